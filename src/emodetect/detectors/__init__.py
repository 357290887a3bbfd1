"""Face detectors: the interface, the registry and the OpenCV backends (`ssd`, `haar`)."""

from emodetect.detectors.base import DETECTORS, Detector, create_detector, list_detectors
from emodetect.detectors.opencv_backends import HaarDetector, SSDDetector

__all__ = ["DETECTORS", "Detector", "HaarDetector", "SSDDetector", "create_detector", "list_detectors"]
