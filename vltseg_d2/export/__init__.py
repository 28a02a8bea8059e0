from .onnx import SemSegExportModule, export_onnx  # noqa: F401
