"""EmoVerse vs transformers' own LlavaForConditionalGeneration: same batch, same vision tower and LLM sizes.

Both models get a CLIP-style ViT (width 192, 2 blocks, 224 x 224 input, 196 patch tokens: the ViT-Tiny shape),
SmolLM2-135M-Instruct with LoRA r=8 / alpha=32 on every linear layer of the LLM, a trainable projector and
frozen base weights. Llava cannot take a timm tower (it indexes `hidden_states`, which timm returns as NCHW
maps). Llava's projector is its usual Linear-GELU-Linear; EmoVerse's is the paper's single Linear W_v.

Measured: the training step (forward + backward, train mode) and `generate` throughput (greedy, a fixed number
of new tokens) as medians of interleaved runs in one process, so the ratio shares the machine's state; the
peak resident memory of one training step + one generate call in a fresh child process per model (VmHWM reset
through /proc/self/clear_refs after the model is built, so the figure is the step's own peak).

    M2SE_CACHE=/tmp/m2se-cache HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_emoverse.py
"""

from __future__ import annotations

import ctypes
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from PIL import Image
from transformers import (
    AutoModelForCausalLM,
    CLIPVisionConfig,
    CLIPVisionModel,
    HfArgumentParser,
    LlavaConfig,
    LlavaForConditionalGeneration,
    SiglipImageProcessor,
)

from configuration_emoverse import EmoVerseConfig
from m2se.backbones import smollm2_path
from modeling_emoverse import EmoVerseForConditionalGeneration
from processing_emoverse import EmoVerseProcessor

LLM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MODEL_NAMES = ("emoverse", "llava")


@dataclass
class BenchmarkArguments:
    repeats: int = field(default=5, metadata={"help": "timed runs per model (after one warm-up run)"})
    batch_size: int = field(default=2, metadata={"help": "EMT records per batch, one image each"})
    new_tokens: int = field(default=16, metadata={"help": "tokens generated per sample"})
    threads: int = field(default=2, metadata={"help": "torch intra-op threads"})
    memory_of: str | None = field(
        default=None, metadata={"help": "internal: measure one model's peak memory"}
    )
    work_dir: str | None = field(default=None, metadata={"help": "internal: folder holding the vision tower"})


def save_vision_tower(folder: Path) -> Path:
    config = CLIPVisionConfig(
        hidden_size=192,
        intermediate_size=768,
        num_hidden_layers=2,
        num_attention_heads=3,
        image_size=224,
        patch_size=16,
    )
    torch.manual_seed(0)
    CLIPVisionModel(config).save_pretrained(folder)
    return folder


def build_llava(vision_dir: Path, text_dir: Path, processor: EmoVerseProcessor):
    """Stock Llava with the same parts, image token and LoRA / freezing as EmoVerse's defaults."""
    reference = EmoVerseConfig()
    vision = CLIPVisionModel.from_pretrained(vision_dir)
    language = AutoModelForCausalLM.from_pretrained(text_dir)
    language.resize_token_embeddings(len(processor.tokenizer), mean_resizing=False)
    config = LlavaConfig(
        vision_config=vision.config,
        text_config=language.config,
        image_token_index=processor.image_token_id,
        image_seq_length=processor.image_seq_length,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=language.config.tie_word_embeddings,
    )
    model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(language.model.state_dict())
    model.lm_head.weight = model.model.language_model.embed_tokens.weight
    inject_adapter_in_model(  # PEFT's API, as EmoVerse does (transformers' add_adapter gates peft versions)
        LoraConfig(
            r=reference.lora_r,
            lora_alpha=reference.lora_alpha,
            lora_dropout=reference.lora_dropout,
            target_modules=rf".*language_model.*\.({'|'.join(LLM_LINEAR_LAYERS)})",
        ),
        model,
    )
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name or "multi_modal_projector" in name)
    return model.eval()


def build_batches(processor: EmoVerseProcessor, batch_size: int, folder: Path) -> tuple[dict, dict]:
    records = []
    for index in range(batch_size):
        path = folder / f"face{index}.png"
        Image.new("RGB", (320, 240), (40 * index, 120, 200 - 30 * index)).save(path)
        records.append(
            {
                "query": f"The person says: 'sample {index}, I really enjoyed it' Please determine which "
                "sentiment label in the video represents: positive or negative.",
                "response": "Positive.",
                "images": [str(path)],
            }
        )
    return processor.process_emt_records(records), processor.process_emt_records(records, training=False)


def training_step(model, batch: dict) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one forward + backward in train mode."""
    model.train()
    model.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), time.process_time()
    model(**batch).loss.backward()
    return time.perf_counter() - wall, time.process_time() - cpu


def generate_timed(model, batch: dict, new_tokens: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of greedy generation of exactly `new_tokens` per sample."""
    model.eval()
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return time.perf_counter() - wall, time.process_time() - cpu


def build_inputs(work_dir: Path, batch_size: int) -> tuple[Path, Path, EmoVerseProcessor, dict, dict]:
    """(vision folder, LLM folder, processor, training batch, generation batch); same for both models."""
    vision_dir = work_dir / "vision"
    if not vision_dir.is_dir():
        save_vision_tower(vision_dir)
    text_dir = smollm2_path()
    image_seq_length = EmoVerseConfig(
        vision_config=CLIPVisionConfig.from_pretrained(vision_dir)
    ).image_seq_length
    processor = EmoVerseProcessor.from_parts(
        SiglipImageProcessor(size={"height": 224, "width": 224}), text_dir, image_seq_length=image_seq_length
    )
    train_batch, prompt_batch = build_batches(processor, batch_size, work_dir)
    return vision_dir, text_dir, processor, train_batch, prompt_batch


def build_model(name: str, vision_dir: Path, text_dir: Path, processor: EmoVerseProcessor):
    if name == "emoverse":
        model = EmoVerseForConditionalGeneration.from_parts(vision_dir, text_dir)
        assert model.config.image_token_id == processor.image_token_id
        return model
    return build_llava(vision_dir, text_dir, processor)


def peak_memory_child(args: BenchmarkArguments) -> None:
    """Print the peak RSS of one training step + one generate call of one model, in MiB (fresh process)."""
    torch.set_num_threads(args.threads)
    work_dir = Path(args.work_dir)
    vision_dir, text_dir, processor, train_batch, prompt_batch = build_inputs(work_dir, args.batch_size)
    model = build_model(args.memory_of, vision_dir, text_dir, processor)
    for parameter in model.parameters():  # fault in weights that loading left memory-mapped
        parameter.data.sum()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand building's freed heap back, so neither model reuses it
    with open("/proc/self/clear_refs", "w") as handle:  # reset VmHWM to the current RSS
        handle.write("5")
    baseline = _status_kib("VmRSS")
    training_step(model, train_batch)
    generate_timed(model, prompt_batch, args.new_tokens)
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {"baseline_mib": baseline / 1024, "peak_mib": peak / 1024, "step_mib": (peak - baseline) / 1024}
        )
    )


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} missing from /proc/self/status")


def main() -> None:
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()
    if args.memory_of is not None:
        peak_memory_child(args)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        vision_dir, text_dir, processor, train_batch, prompt_batch = build_inputs(work_dir, args.batch_size)
        models = {name: build_model(name, vision_dir, text_dir, processor) for name in MODEL_NAMES}
        trainable = {
            name: sum(p.numel() for p in model.parameters() if p.requires_grad)
            for name, model in models.items()
        }
        timings = {name: {"train": [], "generate": []} for name in MODEL_NAMES}
        for model in models.values():  # warm-up
            training_step(model, train_batch)
            generate_timed(model, prompt_batch, args.new_tokens)
        for repeat in range(args.repeats):
            # interleaved, in alternating order, so that both models see the same machine load
            order = MODEL_NAMES if repeat % 2 == 0 else MODEL_NAMES[::-1]
            for name in order:
                timings[name]["train"].append(training_step(models[name], train_batch))
                timings[name]["generate"].append(generate_timed(models[name], prompt_batch, args.new_tokens))
        del models
        memory = {}
        for name in MODEL_NAMES:
            completed = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory_of",
                    name,
                    "--work_dir",
                    work,
                    "--batch_size",
                    str(args.batch_size),
                    "--new_tokens",
                    str(args.new_tokens),
                    "--threads",
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            memory[name] = json.loads(completed.stdout.strip().splitlines()[-1])
    medians = {
        name: {
            f"{phase}_{clock}_s": statistics.median(run[index] for run in runs)
            for phase, runs in phases.items()
            for index, clock in enumerate(("wall", "cpu"))
        }
        for name, phases in timings.items()
    }
    generated_tokens = args.batch_size * args.new_tokens
    report = {
        "batch": {
            "size": args.batch_size,
            "sequence_length": int(train_batch["input_ids"].shape[1]),
            "prompt_length": int(prompt_batch["input_ids"].shape[1]),
            "new_tokens": args.new_tokens,
        },
        "trainable_parameters": trainable,
        "medians": medians,
        "generate_tokens_per_wall_s": {
            name: generated_tokens / values["generate_wall_s"] for name, values in medians.items()
        },
        "ratios_emoverse_over_llava": {
            key: medians["emoverse"][key] / medians["llava"][key] for key in medians["emoverse"]
        }
        | {"peak_memory": memory["emoverse"]["peak_mib"] / memory["llava"]["peak_mib"]},
        "peak_memory_mib": memory,
        "repeats": args.repeats,
        "threads": args.threads,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
