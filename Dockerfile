# tilegrad on the official CUDA 13.0 development image: builds both compiled
# modules (TILEGRAD_CUDA=1), runs the tests at build time (on the CPU; tests
# marked cuda skip), and runs the benchmark by default (docker run --gpus all).
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-dev python3-pip python3-venv g++ \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/cuda/bin:$PATH \
    CUDA_HOME=/usr/local/cuda

WORKDIR /src
COPY . .

RUN TILEGRAD_CUDA=1 pip install ".[test,cuda]" \
    && python -m pytest -q

CMD ["tilegrad", "bench"]
