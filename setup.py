from setuptools import find_packages, setup

EXPORT = ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.2"]  # tools/export_onnx.py

setup(
    name="vltseg_d2",
    version="0.1.0",
    description="Domain-generalized semantic segmentation (VLTSeg, Rein) on detectron2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vltseg_d2", "vltseg_d2.*"]),
    install_requires=[
        # torch / torchvision are pinned by the Makefile; detectron2 comes from
        # tools/install_detectron2.py (or the official git install, see README).
        "timm>=1.0.15",
        "scipy",
        "opencv-python-headless>=4.8,<5",
        "cityscapesscripts>=2.2",
        "fvcore",
        "iopath",
        "tqdm",
        "tabulate",
        "psutil",
        "huggingface_hub",  # backbone weights by hub id (timm depends on it too)
        "safetensors",
        "open_clip_torch>=3.0",  # tqdm: the CLIP text tower and its BPE tokenizer
    ],
    extras_require={
        "export": EXPORT,
        "test": ["pytest>=8", "pytest-xdist", "ruff==0.17.5"] + EXPORT,
        "slurm": ["submitit"],
    },
)
