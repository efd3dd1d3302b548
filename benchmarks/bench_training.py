"""Training throughput of train_m2se.py (stock Trainer + curriculum callback + task-aware loss) against a
minimal hand-written PyTorch loop doing the same optimizer steps on the same batches.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_training.py --recipes tiny_mse_adapter
    demo

Both sides build the model, the curriculum dataset and the collator with the same train_m2se.py functions; the
hand-written loop then runs DataLoader -> forward (the model's own loss) -> backward -> gradient clipping ->
AdamW -> cosine LR, nothing else. The two are run alternately ``--repeats`` times and the medians are compared
(overhead = Trainer time / loop time - 1). Evaluation, checkpoints and logging to disk are off on both sides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import Trainer, get_cosine_schedule_with_warmup, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train_m2se
from m2se.training.loss import TaskAwareLoss
from trainer_callbacks import M2SECurriculumCallback


def prepare(recipe_name: str, steps: int, output_dir: str):
    _, args, recipe = train_m2se.parse_arguments(
        [
            "--recipe",
            recipe_name,
            "--output_dir",
            output_dir,
            "--use_cpu",
            "--disable_tqdm",
            "true",
            "--dataloader_pin_memory",
            "false",
        ]
    )
    set_seed(args.seed)
    model, _, _, plan, collator = train_m2se.build_run(recipe, args, Path(output_dir) / "media")
    args = train_m2se.training_arguments_for(recipe, args, plan)
    args = train_m2se.updated(
        args,
        max_steps=steps,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=steps,
        load_best_model_at_end=False,
    )
    return recipe, args, model, plan, collator


def time_trainer(recipe_name: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as output_dir:
        recipe, args, model, plan, collator = prepare(recipe_name, steps, output_dir)
        loss = TaskAwareLoss(recipe.tasks)
        loss.attach(model)
        callback = M2SECurriculumCallback(plan.stages, loss)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=plan.dataset,
            data_collator=collator,
            compute_loss_func=loss,
            callbacks=[callback],
        )
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def time_plain_loop(recipe_name: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as output_dir:
        _, args, model, plan, collator = prepare(recipe_name, steps, output_dir)
        model.train()
        loader = torch.utils.data.DataLoader(
            plan.dataset, batch_size=args.per_device_train_batch_size, shuffle=False, collate_fn=collator
        )
        parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(
            parameters, lr=args.learning_rate, eps=args.adam_epsilon, weight_decay=args.weight_decay
        )
        scheduler = get_cosine_schedule_with_warmup(optimizer, args.get_warmup_steps(steps), steps)
        start = time.perf_counter()
        for step, batch in enumerate(loader):
            if step == steps:
                break
            batch.pop("task_ids")
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["tiny_mse_adapter", "demo"])
    parser.add_argument("--steps", type=int, nargs="+", default=[32, 8], help="optimizer steps per recipe")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    print("| recipe | steps | batch | Trainer samples/s | plain loop samples/s | Trainer overhead |")
    print("|---|---|---|---|---|---|")
    for recipe_name, steps in zip(options.recipes, options.steps, strict=True):
        trainer_times, loop_times = [], []
        for _ in range(options.repeats):
            trainer_times.append(time_trainer(recipe_name, steps))
            loop_times.append(time_plain_loop(recipe_name, steps))
        batch = train_m2se.parse_arguments(["--recipe", recipe_name])[1].per_device_train_batch_size
        trainer_time, loop_time = statistics.median(trainer_times), statistics.median(loop_times)
        print(
            f"| {recipe_name} | {steps} | {batch} | {steps * batch / trainer_time:.1f} | "
            f"{steps * batch / loop_time:.1f} | {100 * (trainer_time / loop_time - 1):+.1f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
