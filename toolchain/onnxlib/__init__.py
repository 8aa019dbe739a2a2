"""ONNX graphs: reading and saving them safely, editing them, their input shapes, and the interface an
artifact keeps to its source model's names. Nothing here knows about passes, backends or bundles."""
