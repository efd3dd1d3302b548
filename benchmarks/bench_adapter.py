"""MSE-Adapter cost on a real backbone (default: SmolLM2-135M-Instruct), on identical token counts.

    M2SE_CACHE=/tmp/m2se-cache PYTHONPATH=. .venv/bin/python benchmarks/bench_adapter.py --repeats 7

1. Training step: adapter + frozen backbone (forward, backward, AdamW step on the adapter) against forward +
   backward of the backbone alone on the same token ids (gradients flow to the input embeddings, as they
   must to reach the adapter). The two are interleaved; the overhead is the median of the per-pair ratios.
2. Classification inference (MELD label set): samples per CPU-second of `predict` against `generate` +
   parsing the decoded text into a label, on the same batches.
3. Peak memory: a fresh process per workload (`--workload`) loads the backbone, resets its peak RSS (Linux
   /proc/self/clear_refs) and reports the peak RSS reached while running the workload twice.
4. Decoding cost on a MELD-shaped batch (`--decode_batch_size` samples, 7 single-token classes): `predict` and
   `predict(..., return_scores=True)` against one forward pass of the same batch keeping the last position's
   logits only (the least any prediction can cost), interleaved, median of the per-repeat ratios; and, for the
   MOSEI regression answers, how many backbone forward calls `predict` makes and how many tokens each reads
   (one cached step per answer token: the prompt, then one token per call).

Sections: `--sections training,inference,memory,decoding` (default: all).
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, HfArgumentParser

from configuration_mse_adapter import MSEAdapterConfig
from m2se.backbones import smollm2_path
from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor

SECTIONS = ("training", "inference", "memory", "decoding")
WORKLOADS = ("load", "adapter_train", "backbone_train", "predict", "generate")
UTTERANCES = [
    "I honestly did not expect the ending, it was wonderful and I want to watch it again",
    "This is the worst service I have ever had, nobody answered for an hour",
    "Well, it is okay I guess, nothing special about it",
    "Oh my god, you got the job? That is amazing news!",
]


@dataclass
class BenchmarkArguments:
    backbone: str | None = field(
        default=None, metadata={"help": "backbone path (default: SmolLM2-135M-Instruct)"}
    )
    batch_size: int = field(default=4)
    repeats: int = field(default=7, metadata={"help": "timed repetitions per measurement (median reported)"})
    predict_batches: int = field(default=4, metadata={"help": "batches per inference throughput measurement"})
    threads: int = field(
        default=1, metadata={"help": "torch intra-op threads (1: CPU time is then pure compute, no spinning)"}
    )
    decode_batch_size: int = field(default=8, metadata={"help": "samples per batch in the decoding section"})
    sections: str = field(
        default=",".join(SECTIONS), metadata={"help": f"comma-separated subset of {SECTIONS}"}
    )
    workload: str | None = field(
        default=None, metadata={"help": f"internal: run one of {WORKLOADS} for memory"}
    )


def build(args: BenchmarkArguments, task: str):
    """Backbone, MELD-preset (classification) or MOSEI-preset (regression) processor, and the model."""
    path = args.backbone or str(smollm2_path())
    backbone = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    dataset = "meld" if task == "classification" else "mosei"
    processor = MSEAdapterProcessor.from_paper_preset(tokenizer, dataset)
    config = MSEAdapterConfig.from_paper_preset(
        dataset, text_config=backbone.config, base_model_name_or_path=path
    )
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(backbone, processor, config=config)
    return backbone, processor, model


def predict(model: MSEAdapterForCausalLM, processor: MSEAdapterProcessor, batch, **kwargs):
    return model.predict(**batch, answer_constraint=processor.answer_logits_processor(), **kwargs)


def make_batch(processor: MSEAdapterProcessor, batch_size: int, with_labels: bool, seed: int = 0):
    generator = np.random.default_rng(seed)
    lengths = generator.integers(20, 60, size=(batch_size, 2))
    audio = [generator.normal(size=(n, processor.audio_feature_dim)) for n in lengths[:, 0]]
    video = [generator.normal(size=(n, processor.video_feature_dim)) for n in lengths[:, 1]]
    texts = [UTTERANCES[i % len(UTTERANCES)] for i in range(batch_size)]
    labels = None
    if with_labels:
        labels = (
            list(generator.integers(0, len(processor.label_names), size=batch_size))
            if processor.task == "classification"
            else list(generator.uniform(-3, 3, size=batch_size).round(1))
        )
    return processor(text=texts, audio=audio, video=video, labels=labels)


def adapter_step(model: MSEAdapterForCausalLM, optimizer: torch.optim.Optimizer, batch) -> Callable[[], None]:
    def step() -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def backbone_step(backbone, batch, pseudo_token_id: int) -> Callable[[], None]:
    """The backbone alone on the same ids (placeholders mapped to a real token); gradients reach the
    input embeddings."""
    input_ids = batch["input_ids"].masked_fill(batch["input_ids"] == pseudo_token_id, 0)
    position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)

    def step() -> None:
        embeds = backbone.get_input_embeddings()(input_ids).detach().requires_grad_(True)
        loss = backbone(
            inputs_embeds=embeds,
            attention_mask=batch["attention_mask"],
            position_ids=position_ids,
            labels=batch["labels"],
        ).loss
        loss.backward()

    return step


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). On a machine shared with other jobs the CPU time is the
    stable figure: it does not count the time this process waits for a core."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def generate_and_parse(
    model: MSEAdapterForCausalLM, processor: MSEAdapterProcessor, batch
) -> list[str | None]:
    """The released code's way: free generation, then parse the text (None when it is no class index)."""
    max_new_tokens = max(len(ids) for ids in processor.answer_logits_processor().answer_token_ids)
    generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    texts = processor.tokenizer.batch_decode(
        generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
    )
    parsed = []
    for text in texts:
        index = text.strip()
        valid = index.isdigit() and int(index) < len(processor.label_names)
        parsed.append(processor.label_names[int(index)] if valid else None)
    return parsed


def run_training_benchmark(args: BenchmarkArguments) -> dict:
    backbone, processor, model = build(args, "regression")
    batch = make_batch(processor, args.batch_size, with_labels=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5, eps=1e-4)
    model.train()
    with_adapter = adapter_step(model, optimizer, batch)
    alone = backbone_step(backbone, batch, processor.pseudo_token_id)
    with_adapter(), alone()  # warm-up
    adapter_times, backbone_times = [], []
    for _ in range(args.repeats):
        adapter_times.append(timed(with_adapter))
        backbone_times.append(timed(alone))
    report = {
        "tokens_per_step": int(batch["attention_mask"].sum()),
        "sequence_length": batch["input_ids"].shape[1],
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    for clock, index in (("wall", 0), ("cpu", 1)):
        ratios = [a[index] / b[index] for a, b in zip(adapter_times, backbone_times, strict=True)]
        report |= {
            f"adapter_step_{clock}_s": statistics.median(a[index] for a in adapter_times),
            f"backbone_step_{clock}_s": statistics.median(b[index] for b in backbone_times),
            f"overhead_{clock}_pct": 100 * (statistics.median(ratios) - 1),
            f"overhead_{clock}_pct_min_max": (100 * (min(ratios) - 1), 100 * (max(ratios) - 1)),
        }
    return report


def run_inference_benchmark(args: BenchmarkArguments) -> dict:
    _, processor, model = build(args, "classification")
    model.eval()
    batches = [
        make_batch(processor, args.batch_size, with_labels=False, seed=s) for s in range(args.predict_batches)
    ]
    samples = args.batch_size * len(batches)
    with torch.no_grad():
        predict(model, processor, batches[0]), generate_and_parse(model, processor, batches[0])  # warm-up
        predict_rates, generate_rates, unparsable = [], [], 0
        for _ in range(args.repeats):
            predict_rates.append(samples / timed(lambda: [predict(model, processor, b) for b in batches])[1])
            start = time.process_time()
            parsed = [label for b in batches for label in generate_and_parse(model, processor, b)]
            generate_rates.append(samples / (time.process_time() - start))
            unparsable = sum(label is None for label in parsed)
    ratios = [p / g for p, g in zip(predict_rates, generate_rates, strict=True)]
    return {
        "samples": samples,
        "predict_samples_per_cpu_s": statistics.median(predict_rates),
        "generate_parse_samples_per_cpu_s": statistics.median(generate_rates),
        "predict_speedup": statistics.median(ratios),
        "generate_unparsable_of_samples": f"{unparsable}/{samples}",
    }


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def run_workload(args: BenchmarkArguments) -> None:
    """Child process: load, reset the peak RSS, run one workload twice, print the peak RSS in MiB."""
    task = "classification" if args.workload in ("predict", "generate") else "regression"
    backbone, processor, model = build(args, task)
    work: Callable[[], object] = lambda: None  # noqa: E731
    if args.workload != "load":
        batch = make_batch(processor, args.batch_size, with_labels=args.workload.endswith("train"))
        if args.workload == "adapter_train":
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
            work = adapter_step(model.train(), optimizer, batch)
        elif args.workload == "backbone_train":
            work = backbone_step(backbone, batch, processor.pseudo_token_id)
        elif args.workload == "predict":
            work = torch.no_grad()(lambda: predict(model, processor, batch))
        else:
            work = torch.no_grad()(lambda: generate_and_parse(model, processor, batch))
    loaded = peak_rss_mib()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    work(), work()
    print(json.dumps({"loaded_peak_rss_mib": loaded, "peak_rss_mib": peak_rss_mib()}))


def measure_memory(args: BenchmarkArguments) -> dict:
    peaks, loaded = {}, {}
    for workload in WORKLOADS:
        command = [
            sys.executable,
            __file__,
            "--workload",
            workload,
            "--batch_size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
        ]
        if args.backbone:
            command += ["--backbone", args.backbone]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        peaks[workload], loaded[workload] = result["peak_rss_mib"], result["loaded_peak_rss_mib"]
    report = {"peak_rss_while_loading_mib": max(loaded.values())}
    report |= {f"{name}_peak_rss_mib": peaks[name] for name in WORKLOADS}
    report |= {f"{name}_above_loaded_mib": peaks[name] - peaks["load"] for name in WORKLOADS[1:]}
    return report


def run_decoding_benchmark(args: BenchmarkArguments) -> dict:
    """Decoding cost relative to one forward pass with last-position logits (see the module docstring, 4.)."""
    _, processor, model = build(args, "classification")
    model.eval()
    batch = make_batch(processor, args.decode_batch_size, with_labels=False)
    forward = torch.no_grad()(lambda: model(**batch, logits_to_keep=1))
    labels = lambda: predict(model, processor, batch)  # noqa: E731
    scores = lambda: predict(model, processor, batch, return_scores=True)  # noqa: E731
    forward(), labels(), scores()  # warm-up
    times: dict[str, list[tuple[float, float]]] = {"forward": [], "predict": [], "scores": []}
    for _ in range(args.repeats):
        times["forward"].append(timed(forward))
        times["predict"].append(timed(labels))
        times["scores"].append(timed(scores))
    report: dict = {"samples": args.decode_batch_size, "sequence_length": batch["input_ids"].shape[1]}
    for clock, index in (("wall", 0), ("cpu", 1)):
        report[f"forward_{clock}_s"] = statistics.median(t[index] for t in times["forward"])
        for name in ("predict", "scores"):
            ratios = [t[index] / f[index] for t, f in zip(times[name], times["forward"], strict=True)]
            report[f"{name}_{clock}_s"] = statistics.median(t[index] for t in times[name])
            report[f"{name}_over_forward_{clock}"] = statistics.median(ratios)
            report[f"{name}_over_forward_{clock}_min_max"] = (min(ratios), max(ratios))
    report["regression"] = count_regression_steps(args)
    return report


def count_regression_steps(args: BenchmarkArguments) -> dict:
    """Backbone forward calls made by one regression `predict` and the tokens each call reads."""
    _, processor, model = build(args, "regression")
    model.eval()
    batch = make_batch(processor, args.decode_batch_size, with_labels=False)
    tokens_per_call: list[int] = []
    hook = model.language_model.register_forward_pre_hook(
        lambda _, __, kwargs: tokens_per_call.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    values = predict(model, processor, batch)
    hook.remove()
    answer_lengths = {
        len(processor.tokenizer(answer, add_special_tokens=False)["input_ids"])
        for answer in processor._answers
    }
    return {
        "answer_tokens_without_eos": sorted(answer_lengths),
        "forward_calls": len(tokens_per_call),
        "tokens_read_per_call": tokens_per_call,
        "values": values,
    }


def main() -> None:
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()
    torch.set_num_threads(args.threads)
    if args.workload is not None:
        if args.workload not in WORKLOADS:
            raise ValueError(f"--workload must be one of {WORKLOADS}, got {args.workload!r}")
        run_workload(args)
        return
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"--sections must be a subset of {SECTIONS}, got {unknown}")
    runners = {
        "training": run_training_benchmark,
        "inference": run_inference_benchmark,
        "memory": measure_memory,
        "decoding": run_decoding_benchmark,
    }
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
    }
    report |= {name: runners[name](args) for name in sections}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
