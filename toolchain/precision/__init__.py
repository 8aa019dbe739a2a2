"""Precision: calibration data, int8 accounting, fp16/int8 ONNX variants, OpenVINO int8, int8 judging.

- ``calibration``: the samples quantizers calibrate on (``--calibration`` or seeded random data).
- ``quantization``: what every int8 result is counted and refused by; exclusions.
- ``int8_portability``: whether an int8 model's integer results are the same on every CPU (no int16 saturation).
- ``onnx``: a variant's precision applied to an ONNX / ORT-format artifact.
- ``openvino_int8``: NNCF post-training quantization of an OpenVINO IR.
- ``int8_parity``: judging int8 artifacts on many samples, naming the most damaged layers.
"""
