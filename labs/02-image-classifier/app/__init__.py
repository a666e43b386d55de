"""Activity 1: an ImageNet image classifier served with FastAPI and ONNX Runtime."""
