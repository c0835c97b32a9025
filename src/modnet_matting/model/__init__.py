"""Networks only: MobileNetV2 encoder and the MODNet branches."""

from .mobilenetv2 import MobileNetV2, MobileNetV2Backbone
from .modnet import MatteOnly, MODNet

__all__ = ["MODNet", "MatteOnly", "MobileNetV2", "MobileNetV2Backbone"]
