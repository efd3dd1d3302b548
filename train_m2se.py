#!/usr/bin/env python
"""Train MSE-Adapter or EmoVerse (M2SE curriculum) with the transformers Trainer (stock training; its
evaluation loop generates and scores the held-out rows, sharded over the ranks: ``m2se.training.trainer``).

    accelerate launch train_m2se.py                                  # m2se/recipes/demo.yaml, offline, CPU
    accelerate launch train_m2se.py --recipe tiny_emoverse_m2se --output_dir out/tiny
    torchrun --nproc_per_node 8 train_m2se.py --recipe emoverse_m2se --deepspeed configs/deepspeed/zero2.json
    python train_m2se.py --recipe mse_adapter_mosei --seeds 1111,2222,3333,4444,5555 --set model.backbone=...

Every ``TrainingArguments`` flag works and wins over the recipe's ``training`` section; ``--set
key.path=value`` overrides any other recipe value. See the README section "Training with train_m2se.py".
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    EarlyStoppingCallback,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, get_last_checkpoint

from m2se.cli import BAD_INPUT_ERRORS, CommandLineParser
from m2se.collators import EmoVerseCollator, MSEAdapterCollator
from m2se.outputs import atomic_file
from m2se.training.curriculum import CurriculumPlan, build_curriculum
from m2se.training.data import TaskData, load_task_data
from m2se.training.evaluation import HeldOutEvaluator
from m2se.training.loss import TaskAwareLoss
from m2se.training.models import build_emoverse, build_mse_adapter
from m2se.training.recipes import DEFAULT_RECIPE, Recipe, load_recipe, recipe_to_dict
from m2se.training.trainer import M2SETrainer, ScoreUntrainedModel
from trainer_callbacks import CURRICULUM_FILE, M2SECurriculumCallback

logger = logging.getLogger("train_m2se")

NO_HELD_OUT = "No held-out metrics: the recipe holds out no test rows (e.g. data.options.num_eval_per_task 0)"
SEEDS_SUMMARY = ("seeds_summary.json", "seeds_summary.md")  # what a run over several seeds adds to its folder
RUN_FILE = "m2se_run.json"  # the resolved recipe of the run that owns an output folder
# Files whose presence means an output folder holds a run.
RUN_MARKERS = (RUN_FILE, "trainer_state.json", "eval_results.json", CURRICULUM_FILE)


@dataclass
class M2SEArguments:
    """Arguments of train_m2se.py besides the stock ``TrainingArguments``."""

    recipe: str = field(
        default=DEFAULT_RECIPE, metadata={"help": "Bundled recipe name or path to a YAML recipe."}
    )
    set: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Recipe overrides key.path=value, e.g. --set stages.1.rates.msa=0.05 model.lora.r=16; "
            "--set may be given several times",
            # Several --set flags add up (argparse's default would keep only the last one).
            "action": "extend",
        },
    )
    seeds: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated seeds run one after another (e.g. 1111,2222,3333,4444,5555); "
            "writes seeds_summary.json and seeds_summary.md. Default: the recipe's seeds if "
            "--seeds all, else --seed."
        },
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow an output folder that already holds another run."}
    )
    save_full_model: bool = field(
        default=False,
        metadata={
            "help": "Also save the frozen backbone (MSE-Adapter) / merge LoRA into the LLM (EmoVerse)."
        },
    )
    skip_untrained_eval: bool = field(
        default=False, metadata={"help": "Do not score the untrained model on the test rows before training."}
    )


def parse_arguments(argv: list[str]) -> tuple[M2SEArguments, TrainingArguments, Recipe]:
    """Recipe first (its ``training`` values become the flag defaults), then every flag."""
    script_args, _ = HfArgumentParser(M2SEArguments, add_help=False).parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    recipe = load_recipe(script_args.recipe, script_args.set)
    training_fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(recipe.training) - training_fields)
    if unknown:
        raise ValueError(f"recipe {recipe.name!r}: training.{unknown[0]} is not a TrainingArguments field")
    parser = OneLineArgumentParser((M2SEArguments, TrainingArguments))
    parser.set_defaults(output_dir=str(Path("outputs") / recipe.name), **recipe.training)
    script_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    check_training_flags(recipe, training_args, given_flags(argv))
    return script_args, training_args, recipe


class OneLineArgumentParser(HfArgumentParser, CommandLineParser):
    """``HfArgumentParser`` whose usage errors are one line (``m2se.cli.CommandLineParser.error``)."""


def given_flags(argv: list[str]) -> set[str]:
    """The flags written on the command line (a value equal to the default still counts as given)."""
    probe = HfArgumentParser((M2SEArguments, TrainingArguments))
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    namespace, _ = probe.parse_known_args(argv)
    return set(vars(namespace))


def check_training_flags(recipe: Recipe, args: TrainingArguments, flags: set[str]) -> None:
    """Refuse, before any work, the TrainingArguments values the curriculum cannot honour, naming both sides.

    ``flags`` are the flags given on the command line; the recipe's ``training`` values count as asked
    for too.
    """

    def origin(name: str) -> str:
        return f"--{name}" if name in flags else f"training.{name} (recipe {recipe.name})"

    asked = flags | set(recipe.training)
    if args.learning_rate < 0:
        raise ValueError(f"{origin('learning_rate')}: expected a number >= 0, got {args.learning_rate}")
    epochs = args.num_train_epochs
    if epochs < 1 or epochs != int(epochs):
        raise ValueError(
            f"{origin('num_train_epochs')}: the curriculum runs whole epochs per stage; expected a whole "
            f"number >= 1, got {epochs}"
        )
    pinned = [f"stages.{index}.epochs={stage.epochs}" for index, stage in enumerate(recipe.stages)]
    if "num_train_epochs" in flags and all(stage.epochs is not None for stage in recipe.stages):
        raise ValueError(
            f"{origin('num_train_epochs')} {epochs:g} cannot take effect: every stage of recipe "
            f"{recipe.name!r} pins its epochs ({', '.join(pinned)}); drop one of them (e.g. --set "
            "stages.0.epochs=null)"
        )
    for name in ("save_strategy", "eval_strategy"):
        if getattr(args, name) == "epoch":
            raise ValueError(
                f"{origin(name)} epoch: one Trainer epoch is the whole curriculum here (every stage and its "
                f"epochs); use {name.split('_')[0]}_strategy steps with --{name.split('_')[0]}_steps N"
            )
    for name, refused, why in (
        ("batch_eval_metrics", True, "the held-out metrics (F1, correlation) need every prediction at once"),
        ("eval_do_concat_batches", False, "the held-out metrics need the predictions of every batch joined"),
        ("dataloader_drop_last", True, "it would leave held-out rows unscored"),
    ):
        if getattr(args, name) == refused:
            raise ValueError(f"{origin(name)} {refused}: not supported here, {why}")
    if "train_sampling_strategy" in asked and args.train_sampling_strategy != "sequential":
        raise ValueError(
            f"{origin('train_sampling_strategy')} {args.train_sampling_strategy}: the curriculum is laid out "
            "in order and must be read with train_sampling_strategy sequential"
        )
    for name in ("save_strategy", "save_steps"):
        if recipe.evaluation.patience is not None and name in asked:
            value = getattr(args, name)
            raise ValueError(
                f"{origin(name)} {getattr(value, 'value', value)} conflicts with evaluation.patience "
                f"{recipe.evaluation.patience}: early stopping saves a checkpoint at every evaluation and "
                f"keeps the best one; drop {origin(name)} (or --set evaluation.patience=null)"
            )


def check_seeds_folder(parent: Path) -> None:
    """A run over several seeds owns ``parent``: refuse one holding more than its seed runs and summaries."""
    if parent.is_dir():
        refuse_foreign_files(
            parent,
            [
                path.name
                for path in parent.iterdir()
                if not (path.is_dir() and path.name.startswith("seed_")) and path.name not in SEEDS_SUMMARY
            ],
            "a run over several seeds writes seed_<seed>/ folders and seeds_summary.json/.md there",
        )


def refuse_foreign_files(folder: Path, names: list[str], why: str) -> None:
    if names:
        names = sorted(names)
        raise FileExistsError(
            f"output folder {folder} holds files that train_m2se.py did not write "
            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); {why}: choose a new or empty "
            "--output_dir"
        )


def check_output_dir(output_dir: Path, recipe: Recipe, resume: str | None, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder; refuse to resume from a checkpoint of another recipe."""
    if resume is not None:
        checkpoint = Path(resume)
        if not (checkpoint / "trainer_state.json").is_file():
            raise FileNotFoundError(
                f"--resume_from_checkpoint {resume}: no trainer_state.json in that folder"
            )
        run_file = checkpoint.parent / RUN_FILE
        saved = json.loads(run_file.read_text(encoding="utf-8"))["recipe"] if run_file.is_file() else None
        if saved is None or saved != recipe_to_dict(recipe):
            saved_name = saved["name"] if saved else "unknown (no m2se_run.json beside it)"
            raise ValueError(
                f"--resume_from_checkpoint {resume} belongs to recipe {saved_name} with other settings; this "
                "run "
                f"is recipe {recipe.name!r}: resume with the same recipe and overrides"
            )
        return
    if output_dir.is_dir() and not (output_dir / RUN_FILE).is_file():
        refuse_foreign_files(
            output_dir, [path.name for path in output_dir.iterdir()], "refusing to write over them"
        )
    run_file = output_dir / RUN_FILE
    if run_file.is_file() and not RunRecord.blocks_a_rerun(json.loads(run_file.read_text(encoding="utf-8"))):
        return  # the folder holds a failed or killed run of ours: a rerun replaces it
    held = [name for name in RUN_MARKERS if (output_dir / name).exists()]
    held += [path.name for path in output_dir.glob("checkpoint-*")] if output_dir.is_dir() else []
    if held and not overwrite:
        raise FileExistsError(
            f"output folder {output_dir} already holds a run ({', '.join(sorted(held)[:3])}); pass "
            "--overwrite_output_dir to replace it or --resume_from_checkpoint to continue it"
        )


def build_run(
    recipe: Recipe, args: TrainingArguments, media_dir: Path
) -> tuple[torch.nn.Module, Any, TaskData, CurriculumPlan, Any]:
    """Data (generated media go to ``media_dir``, never the output folder), curriculum, model, collator."""
    # Reading world_size sets up torch.distributed first: ZeRO-3 partitions the model while loading it.
    global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    if args.deepspeed and torch.distributed.is_initialized():
        import deepspeed

        # With use_cpu the process group comes from accelerate (gloo); DeepSpeed must adopt it, or ZeRO-3's
        # partitioned loading sees a world of one process.
        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())
    data = load_task_data(recipe, media_dir)
    if recipe.model.kind == "mse_adapter":
        model, processor = build_mse_adapter(recipe, data)
        collator = MSEAdapterCollator(processor, recipe.tasks)
    else:
        model, processor = build_emoverse(recipe)
        collator = EmoVerseCollator(processor, recipe.tasks)
    plan = build_curriculum(
        data.pools,
        recipe.stages,
        global_batch,
        args.seed,
        epochs=int(args.num_train_epochs),
        max_steps=args.max_steps if args.max_steps > 0 else None,
    )
    return model, processor, data, plan, collator


def training_arguments_for(
    recipe: Recipe, args: TrainingArguments, plan: CurriculumPlan
) -> TrainingArguments:
    """The curriculum decides the number of steps, the sampling order and (with a metric) when to evaluate."""
    updates: dict[str, Any] = dict(
        max_steps=plan.total_steps,
        train_sampling_strategy="sequential",
        remove_unused_columns=False,
    )
    if recipe.evaluation.metric is not None and args.eval_strategy == "no":
        updates.update(eval_strategy="steps", eval_steps=plan.stages[0].steps_per_epoch)
    if recipe.evaluation.patience is not None:
        # Early stopping keeps the best checkpoint, so checkpoints follow the evaluations (the recipe's, one
        # per epoch, or the --eval_strategy steps / --eval_steps given).
        updates.update(
            save_strategy="steps",
            save_steps=updates.get("eval_steps", args.eval_steps),
            load_best_model_at_end=True,
            metric_for_best_model=recipe.evaluation.metric,
            greater_is_better=recipe.evaluation.greater_is_better,
        )
    return updated(args, **updates)


def updated(args: TrainingArguments, **updates: Any) -> TrainingArguments:
    """A copy of ``args`` with ``updates``; the strategy strings become their enums, as ``__post_init__``
    does.

    Not ``dataclasses.replace``: re-running ``__post_init__`` rebuilds the DeepSpeed configuration after the
    distributed set-up and leaves it with a world size of 1.
    """
    enums = {"eval_strategy": IntervalStrategy, "save_strategy": SaveStrategy}
    new_args = copy.copy(args)
    for name, value in updates.items():
        setattr(new_args, name, enums[name](value) if name in enums else value)
    return new_args


def run_seed(recipe: Recipe, script_args: M2SEArguments, args: TrainingArguments) -> dict[str, float]:
    set_seed(args.seed)
    output_dir = Path(args.output_dir)
    if args.resume_from_checkpoint == "last":
        last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if last is None:
            raise FileNotFoundError(f"--resume_from_checkpoint last: no checkpoint-* folder in {output_dir}")
        args = updated(args, resume_from_checkpoint=last)
    check_output_dir(output_dir, recipe, args.resume_from_checkpoint, script_args.overwrite_output_dir)
    # Generated media (synthetic EMT images) live for the run only: the output folder stays untouched until
    # training starts.
    with tempfile.TemporaryDirectory(prefix="m2se-media-") as media_dir:
        return _build_and_train(recipe, script_args, args, Path(media_dir))


def _build_and_train(
    recipe: Recipe, script_args: M2SEArguments, args: TrainingArguments, media_dir: Path
) -> dict[str, float]:
    output_dir = Path(args.output_dir)
    model, processor, data, plan, collator = build_run(recipe, args, media_dir)
    args = training_arguments_for(recipe, args, plan)
    # The Trainer would contact the Hub when it is built and at every save; the finished folder is pushed
    # once.
    push_to_hub = args.push_to_hub
    args = updated(args, push_to_hub=False)
    existed = output_dir.exists()
    record = RunRecord(recipe)
    try:
        return _train(recipe, script_args, args, data, plan, model, processor, collator, push_to_hub, record)
    except BaseException as error:
        if args.process_index == 0:
            if record.started:
                record.write(output_dir, "failed", error)
            elif not existed and output_dir.is_dir() and not any(output_dir.iterdir()):
                output_dir.rmdir()  # a failed start leaves no trace (the Trainer creates the folder)
        raise


def _train(
    recipe: Recipe,
    script_args: M2SEArguments,
    args: TrainingArguments,
    data: TaskData,
    plan: CurriculumPlan,
    model: torch.nn.Module,
    processor: Any,
    collator: Any,
    push_to_hub: bool,
    record: RunRecord,
) -> dict[str, float]:
    output_dir = Path(args.output_dir)
    loss = TaskAwareLoss(recipe.tasks, recipe.task_difficulty_weighting, recipe.difficulty_temperature)
    loss.attach(model)
    warmup = args.warmup_steps if args.warmup_steps < 1 else args.warmup_steps / plan.total_steps
    curriculum = M2SECurriculumCallback(
        plan.stages,
        loss,
        schedule_per_stage=recipe.schedule_per_stage and len(plan.stages) > 1,
        warmup=warmup,
    )
    callbacks: list = [record, curriculum]
    if recipe.evaluation.patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.evaluation.patience))
    evaluator = HeldOutEvaluator(
        processor,
        recipe.model.kind,
        recipe.tasks,
        {
            "eval": _cap(data.eval_rows, recipe.evaluation.max_samples),
            "test": _cap(data.test_rows, recipe.evaluation.max_samples),
        },
        collator,
        recipe.evaluation.max_new_tokens,
    )
    trainer = M2SETrainer(
        model=model,
        args=args,
        train_dataset=plan.dataset,
        eval_dataset=evaluator.datasets["eval"] if args.eval_strategy != "no" else None,
        data_collator=collator,
        compute_loss_func=loss,
        callbacks=callbacks,
        evaluator=evaluator,
    )
    test_rows = evaluator.datasets["test"]
    # The untrained model is scored inside train(), once the Trainer prepared it (ZeRO-3 partitions it).
    untrained_eval = None
    if not script_args.skip_untrained_eval and args.resume_from_checkpoint is None:
        untrained_eval = ScoreUntrainedModel(lambda: trainer.score(test_rows))
        trainer.add_callback(untrained_eval)

    resume = args.resume_from_checkpoint
    if resume is not None:
        restore_callback_state(Path(resume), curriculum)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()  # trainer_state.json with the whole log history
    untrained = untrained_eval.metrics if untrained_eval is not None else None
    trained = trainer.score(test_rows)
    save_model(trainer, recipe, script_args.save_full_model)
    if trainer.is_world_process_zero():
        print_comparison(untrained, trained)
        processor.save_pretrained(output_dir)
        save_reports(trainer, recipe, plan, evaluator, trained, push_to_hub)
        record.write(output_dir, "finished")
    return trained


class RunRecord(TrainerCallback):
    """``m2se_run.json``: the resolved recipe and the run's status, written atomically when training starts
    (``running``: every check passed, the optimizer exists), at the end (``finished``) or on an error after
    the start (``failed`` with the error line). A failed start writes nothing; a failed run does not block a
    rerun in the same folder."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.started = False

    def on_train_begin(self, args: TrainingArguments, state, control, **kwargs) -> None:
        self.started = True
        if state.is_world_process_zero:
            self.write(Path(args.output_dir), "running")

    @staticmethod
    def blocks_a_rerun(record: dict[str, Any]) -> bool:
        """A finished run, or one still running, blocks a rerun; a failed one does not, nor a ``running`` one
        whose process on this machine has ended (killed with SIGKILL or by a power cut)."""
        if record.get("status") == "failed":
            return False
        if record.get("status") == "running" and record.get("host") == socket.gethostname():
            try:
                os.kill(record["pid"], 0)
            except ProcessLookupError:
                logger.warning(
                    "%s says running, but its process %s has ended: rerun", RUN_FILE, record["pid"]
                )
                return False
            except (KeyError, TypeError, PermissionError):
                return True
        return True

    def write(self, output_dir: Path, status: str, error: BaseException | None = None) -> None:
        content = {"status": status, "recipe": recipe_to_dict(self.recipe)}
        if status == "running":
            content.update(pid=os.getpid(), host=socket.gethostname())
        if error is not None:
            content["error"] = f"{type(error).__name__}: {' '.join(str(error).split())}"
        with atomic_file(output_dir / RUN_FILE) as handle:
            json.dump(content, handle, indent=2)


def _cap(rows, max_samples: int | None):
    return rows if max_samples is None or len(rows) <= max_samples else rows.select(range(max_samples))


def restore_callback_state(checkpoint: Path, curriculum: M2SECurriculumCallback) -> None:
    """Put the curriculum callback's saved state (trainer_state.json ``stateful_callbacks``) back in place.

    The Trainer's own restore re-creates callbacks from their JSON arguments, which would cut the link between
    the callback and the loss function; restoring into the live object keeps it.
    """
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    saved = state.get("stateful_callbacks", {}).get(type(curriculum).__name__)
    if saved is None:
        raise ValueError(f"checkpoint {checkpoint} holds no {type(curriculum).__name__} state")
    curriculum.load_state(saved[0] if isinstance(saved, list) else saved)


def print_comparison(untrained: dict[str, float] | None, trained: dict[str, float]) -> None:
    """A table of the held-out test metrics before and after training."""
    if not trained:
        print(f"\n{NO_HELD_OUT}", flush=True)
        return
    rows = (
        [f"{'metric':<22}{'untrained':>12}{'trained':>12}"]
        if untrained
        else [f"{'metric':<22}{'trained':>12}"]
    )
    for key, value in trained.items():
        before = f"{untrained[key]:>12.4f}" if untrained else ""
        rows.append(f"{key:<22}{before}{value:>12.4f}")
    print("\nHeld-out test metrics\n" + "\n".join(rows), flush=True)


def save_model(trainer: Trainer, recipe: Recipe, full: bool) -> None:
    """Adapter-only (MSE-Adapter) / projector + LoRA (EmoVerse) by default, through the Trainer so that ZeRO-3
    shards are gathered; every rank must call it."""
    if not full:
        trainer.save_model(trainer.args.output_dir)
    elif trainer.is_world_process_zero():
        trainer.model.save_pretrained(trainer.args.output_dir, save_full_model=True)


def save_reports(
    trainer: Trainer,
    recipe: Recipe,
    plan: CurriculumPlan,
    evaluator: HeldOutEvaluator,
    metrics: dict[str, float],
    push_to_hub: bool,
) -> None:
    """eval_results.json, training_curves.png, confusion_matrix.png (classification), README.md; then the
    Hub."""
    from m2se.reporting import plot_confusion_matrix, plot_training_curves, write_model_card

    output_dir = Path(trainer.args.output_dir)
    results = {f"test_{k}": v for k, v in metrics.items()} or {"test_samples": 0, "note": NO_HELD_OUT}
    with atomic_file(output_dir / "eval_results.json") as handle:
        json.dump(results, handle, indent=2)
    plot_training_curves(
        trainer.state.log_history,
        [(stage.name, stage.start_step) for stage in plan.stages],
        output_dir / "training_curves.png",
    )
    label_names = evaluator.processor.label_names if recipe.model.kind == "mse_adapter" else None
    if label_names and metrics:
        predictions, references = evaluator.last_predictions[recipe.tasks[0]]
        plot_confusion_matrix(predictions, references, label_names, output_dir / "confusion_matrix.png")
    stages = "; ".join(
        f"{stage.name}: {sum(stage.samples.values())} samples {stage.samples}, {stage.epochs} epoch(s)"
        for stage in plan.stages
    )
    write_model_card(
        output_dir,
        model_name=output_dir.name,
        base_model=recipe.model.backbone,
        datasets=[recipe.data.source, *sorted(recipe.data.paths.values())],
        recipe_name=recipe.name,
        task="text-generation",
        task_name="Multimodal sentiment analysis" if recipe.tasks[0] == "msa" else "Emotion recognition",
        metrics={recipe.data.source: metrics} if metrics else None,
        description=recipe.description,
        training_summary=f"Trained with `train_m2se.py --recipe {recipe.name}`. Curriculum: {stages}.",
    )
    if push_to_hub:
        push_folder(trainer, recipe)


def push_folder(trainer: Trainer, recipe: Recipe) -> None:
    """Upload the output folder (with this card, without checkpoints) to the repo named by the Trainer's Hub
    settings (``--hub_model_id``, ``--hub_token``, ``--hub_private_repo``); a Hub failure leaves the local run
    complete."""
    from huggingface_hub import upload_folder

    try:
        trainer.init_hf_repo()
        upload_folder(
            repo_id=trainer.hub_model_id,
            folder_path=trainer.args.output_dir,
            token=trainer.args.hub_token,
            commit_message=f"train_m2se.py --recipe {recipe.name}",
            ignore_patterns=["checkpoint-*"],
        )
    except Exception as error:
        first_line = (str(error).splitlines() or [""])[0][:200]
        print(
            f"push_to_hub failed ({type(error).__name__}: {first_line}); everything is saved locally in "
            f"{trainer.args.output_dir}",
            flush=True,
        )


class StoppedBySignal(SystemExit):
    """SIGTERM (a scheduler's preemption, ``kill``) as an exception, so that the run record says the run
    failed; the exit status stays 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signal_name = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"stopped by {self.signal_name}"


def _raise_stopped(signum: int, frame: Any) -> None:
    raise StoppedBySignal(signum)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> dict[str, Any]:
    script_args, args, recipe = parse_arguments(sys.argv[1:] if argv is None else argv)
    if script_args.seeds is None:
        seeds = [args.seed]
    elif script_args.seeds == "all":
        seeds = recipe.seeds or [args.seed]
    else:
        seeds = [int(seed) for seed in script_args.seeds.split(",")]
    if len(seeds) > 1:
        check_seeds_folder(Path(args.output_dir))
    results: dict[int, dict[str, float]] = {}
    try:
        for seed in seeds:
            output_dir = Path(args.output_dir) / f"seed_{seed}" if len(seeds) > 1 else Path(args.output_dir)
            results[seed] = run_seed(
                recipe, script_args, updated(args, seed=seed, output_dir=str(output_dir))
            )
        if len(seeds) > 1 and args.process_index == 0:
            from m2se.reporting import summarize_seeds

            summary, table = summarize_seeds(results)
            with atomic_file(Path(args.output_dir, SEEDS_SUMMARY[0])) as handle:
                json.dump(summary, handle, indent=2)
            with atomic_file(Path(args.output_dir, SEEDS_SUMMARY[1])) as handle:
                handle.write(table + "\n")
            print(table)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return results


def cli(argv: list[str] | None = None) -> int:
    """The command line: bad input (a bad recipe, ``--set``, flag value or combination) prints one line on
    stderr and exits 2; a bare ``--debug`` shows the traceback instead (``--debug <option>`` stays the
    Trainer's own ``debug`` setting)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ours = [
        index
        for index, token in enumerate(argv)
        if token == "--debug" and (index + 1 == len(argv) or argv[index + 1].startswith("-"))
    ]
    remaining = [token for index, token in enumerate(argv) if index not in ours]
    try:
        main(remaining)
    except BAD_INPUT_ERRORS as error:
        if ours:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"train_m2se.py: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
