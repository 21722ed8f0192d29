"""GFP-GAN (GFPGANv1Clean) as a transformers model; importing this registers it with AutoConfig / AutoModel."""

from transformers import AutoConfig, AutoModel

from .configuration_gfpgan import GFPGANConfig
from .convert_original import CheckpointError, load_original_weights
from .modeling_gfpgan import GFPGANModel, GFPGANOutput

AutoConfig.register(GFPGANConfig.model_type, GFPGANConfig)
AutoModel.register(GFPGANConfig, GFPGANModel)

__all__ = ["CheckpointError", "GFPGANConfig", "GFPGANModel", "GFPGANOutput", "load_original_weights"]
