"""The layer classes, one file per theme; ``tilegrad.nn`` re-exports them all."""
from .module import Module  # noqa: F401
from .container import ModuleDict, ModuleList, Sequential  # noqa: F401
from .linear import Identity, Linear  # noqa: F401
from .conv import Conv2d, ConvTranspose2d  # noqa: F401
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm  # noqa: F401
from .dropout import Dropout  # noqa: F401
from .sparse import Embedding  # noqa: F401
from .flatten import Flatten, Unflatten  # noqa: F401
from .upsampling import Upsample  # noqa: F401
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,  # noqa: F401
                   MSELoss, NLLLoss, SmoothL1Loss)
from .transformer import MultiheadAttention, TransformerEncoder, TransformerEncoderLayer  # noqa: F401
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNBase, RNNCell  # noqa: F401

__all__ = ['Module', 'ModuleDict', 'ModuleList', 'Sequential', 'Identity', 'Linear', 'Conv2d', 'ConvTranspose2d', 'AdaptiveAvgPool2d', 'AvgPool2d', 'MaxPool2d', 'GELU', 'LeakyReLU', 'LogSoftmax', 'ReLU', 'Sigmoid', 'SiLU', 'Softmax', 'Tanh', 'BatchNorm1d', 'BatchNorm2d', 'LayerNorm', 'Dropout', 'Embedding', 'Flatten', 'Unflatten', 'Upsample', 'GRU', 'GRUCell', 'LSTM', 'LSTMCell', 'RNN', 'RNNBase', 'RNNCell', 'BCELoss', 'BCEWithLogitsLoss', 'CrossEntropyLoss', 'HuberLoss', 'KLDivLoss', 'L1Loss',
           'MSELoss', 'NLLLoss', 'SmoothL1Loss', 'MultiheadAttention', 'TransformerEncoder', 'TransformerEncoderLayer']

from .activation_extra import (ELU, Hardsigmoid, Hardswish, Hardtanh, LogSigmoid, Mish, PReLU, ReLU6,  # noqa: F401,E402
                               SELU, Softplus, Softsign, Tanhshrink)
__all__ += ['ELU', 'Hardsigmoid', 'Hardswish', 'Hardtanh', 'LogSigmoid', 'Mish', 'PReLU', 'ReLU6', 'SELU', 'Softplus',
            'Softsign', 'Tanhshrink']
from .conv1d import Conv1d  # noqa: F401,E402
from .pooling1d import AdaptiveAvgPool1d, AvgPool1d, MaxPool1d  # noqa: F401,E402
from .group_norm import GroupNorm, InstanceNorm1d, InstanceNorm2d  # noqa: F401,E402
from .dropout import Dropout1d, Dropout2d  # noqa: F401,E402
from .parameter_containers import ParameterDict, ParameterList  # noqa: F401,E402
from .linear import Bilinear  # noqa: F401,E402
__all__ += ['Conv1d', 'AdaptiveAvgPool1d', 'AvgPool1d', 'MaxPool1d', 'GroupNorm', 'InstanceNorm1d', 'InstanceNorm2d',
            'Dropout1d', 'Dropout2d', 'ParameterDict', 'ParameterList', 'Bilinear']
from .transformer_decoder import Transformer, TransformerDecoder, TransformerDecoderLayer  # noqa: F401,E402
__all__ += ['Transformer', 'TransformerDecoder', 'TransformerDecoderLayer']
