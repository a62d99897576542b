import importlib

special = importlib.import_module(".special", __name__)
