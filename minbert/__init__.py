"""minbert: a small BERT, its optimizer, task heads and training loops, built
notebook by notebook (see notebooks/ and README.md)."""
from .env import ci_mode
from .model import BertConfig, BertModel
from .optimizer import AdamW
from .pretrained import CheckpointError, load_pretrained

__version__ = "0.1.0"
__all__ = ["AdamW", "BertConfig", "BertModel", "CheckpointError", "ci_mode", "load_pretrained"]
