"""Answer constraints for closed-set tasks: a `LogitsProcessor` that lets `generate` produce only one answer
of a fixed set, each answer a token sequence ending with its terminator (EOS or the chat template's end of
turn).

Hub remote code shared by the MSE-Adapter and EmoVerse processors: imports only torch and transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor


class AnswerSetLogitsProcessor(LogitsProcessor):
    r"""
    Restricts generation to a closed set of answers; pass it as `model.generate(...,
    logits_processor=LogitsProcessorList([constraint]))`.

    The answers' token sequences form a prefix tree whose nodes are numbered states. The allowed next tokens
    of every state and the state transitions are precomputed tensors over the few tokens the answers use, so
    each step costs a handful of tensor operations for the whole batch: the state of every row is read from
    its generated tokens (one table lookup per generated token, also correct when beam search reorders rows)
    and every other token's score becomes `-inf`. After a complete answer only its terminator is allowed, so
    that generation stops there, or keeps repeating the terminator until `max_new_tokens` when the terminator
    is not among the model's EOS ids.

    Only generated tokens are read, so left padding does not matter. The first call of a `generate` run sees
    the prompt alone and remembers it (`input_ids` holds the prompt and the generated tokens when `generate`
    is fed `input_ids`, the generated tokens alone when it is fed `inputs_embeds`); a call whose `input_ids`
    are not the previous call's plus one token after the remembered prompt starts a new run. One instance
    therefore serves one `generate` call at a time, and any number one after another.

    Args:
        answer_token_ids (`Sequence[Sequence[int]]`): per answer its token ids, terminator included.
        answers (`Sequence`): what each answer stands for (a label name, a value, the answer text), in the
            same order; `decode` returns these.
        answers_are_values (`bool`, defaults to `False`): the answers are the values of a regression grammar
            (not classes): a prediction is the decoded value, never a probability per answer.
    """

    def __init__(
        self,
        answer_token_ids: Sequence[Sequence[int]],
        answers: Sequence[Any],
        answers_are_values: bool = False,
    ):
        answer_token_ids = [[int(token) for token in ids] for ids in answer_token_ids]
        if len(answer_token_ids) != len(answers) or not answer_token_ids:
            raise ValueError(
                f"answer_token_ids and answers must be non-empty and of equal length, got "
                f"{len(answer_token_ids)} token sequences and {len(answers)} answers"
            )
        if any(len(ids) < 2 for ids in answer_token_ids):
            raise ValueError(
                "every answer needs at least one token before its terminator, got token sequences "
                f"{[ids for ids in answer_token_ids if len(ids) < 2]}"
            )
        self.answer_token_ids = answer_token_ids
        self.answers = list(answers)
        self.answers_are_values = answers_are_values
        self._build_tables()
        self._prompt: torch.Tensor | None = None
        self._last_length = 0  # length of the input_ids of the previous call

    def _build_tables(self) -> None:
        """Prefix tree -> `_tokens` (T,), `_transitions` (states, T + 1), `_allowed` (states, T),
        `_answer_of_state` (states,)."""
        children: list[dict[int, int]] = [{}]
        final_answer: list[int] = [-1]  # answer completed (terminator included) at this state
        spelled_answer: list[int] = [-1]  # answer whose tokens before the terminator end at this state
        for index, ids in enumerate(self.answer_token_ids):
            state = 0
            for position, token in enumerate(ids):
                if final_answer[state] != -1:
                    raise ValueError(
                        f"answer {self.answers[final_answer[state]]!r} is a prefix of answer "
                        f"{self.answers[index]!r} (terminator included); each answer must end with its "
                        "terminator"
                    )
                if token not in children[state]:
                    children.append({})
                    final_answer.append(-1)
                    spelled_answer.append(-1)
                    children[state][token] = len(children) - 1
                state = children[state][token]
                if position == len(ids) - 2:
                    spelled_answer[state] = index
            if final_answer[state] != -1 or children[state]:
                raise ValueError(f"answer {self.answers[index]!r} is given twice or is a prefix of another")
            final_answer[state] = index
        self._tokens = torch.tensor(sorted({token for ids in self.answer_token_ids for token in ids}))
        column = {int(token): slot for slot, token in enumerate(self._tokens.tolist())}
        terminators = {ids[-1] for ids in self.answer_token_ids}
        # One extra state absorbs tokens no answer continues with (e.g. another processor's choice): it
        # allows only terminators, so that such a row ends instead of producing free text.
        dead = len(children)
        self._transitions = torch.full((dead + 1, len(column) + 1), dead, dtype=torch.long)
        self._allowed = torch.zeros(dead + 1, len(column), dtype=torch.bool)
        for state, state_children in enumerate(children):
            for token, child in state_children.items():
                self._transitions[state, column[token]] = child
                self._allowed[state, column[token]] = True
            if final_answer[state] != -1:
                # Done: stay here whatever comes next (generate pads finished rows) and allow the terminator.
                self._transitions[state] = state
                self._allowed[state, column[self.answer_token_ids[final_answer[state]][-1]]] = True
        self._allowed[dead, [column[token] for token in terminators]] = True
        self._answer_of_state = torch.tensor(
            [
                final if final != -1 else spelled
                for final, spelled in zip(final_answer, spelled_answer, strict=True)
            ]
            + [-1]
        )

    def _generated_tokens(self, input_ids: torch.LongTensor) -> torch.LongTensor:
        prompt = self._prompt
        continues = (
            prompt is not None
            and input_ids.shape[0] == prompt.shape[0]
            # One token per step: an empty remembered prompt (an `inputs_embeds` run) is not extended by the
            # whole prompt of the next run.
            and input_ids.shape[1] == self._last_length + 1
            and torch.equal(input_ids[:, : prompt.shape[1]], prompt)
        )
        if not continues:
            self._prompt = input_ids
        self._last_length = input_ids.shape[1]
        return input_ids[:, self._prompt.shape[1] :]

    def answer_states(self, generated: torch.LongTensor) -> torch.LongTensor:
        """`generated` (batch, steps) answer tokens -> (batch,) prefix-tree state of each row."""
        device = generated.device
        tokens = self._tokens.to(device)
        transitions = self._transitions.to(device)
        slots = torch.searchsorted(tokens, generated.contiguous()).clamp(max=len(tokens) - 1)
        slots = torch.where(tokens[slots] == generated, slots, len(tokens))  # other tokens -> last column
        states = torch.zeros(generated.shape[0], dtype=torch.long, device=device)
        for step in range(generated.shape[1]):
            states = transitions[states, slots[:, step]]
        return states

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """`input_ids` (batch, length), `scores` (batch, vocab) -> scores with every token outside the
        admissible continuations set to `-inf`."""
        if int(self._tokens[-1]) >= scores.shape[-1]:
            raise ValueError(
                f"answer token id {int(self._tokens[-1])} lies outside the model's vocabulary of "
                f"{scores.shape[-1]}; build the constraint with the model's own tokenizer"
            )
        states = self.answer_states(self._generated_tokens(input_ids))
        tokens = self._tokens.to(scores.device)
        allowed = self._allowed.to(scores.device)[states]  # (batch, T)
        constrained = torch.full_like(scores, -float("inf"))
        constrained[:, tokens] = scores[:, tokens].masked_fill(~allowed, -float("inf"))
        return constrained

    def answer_indices(self, generated: torch.LongTensor) -> torch.LongTensor:
        """`generated` (batch, steps), the tokens after the prompt -> (batch,) index of the answer they spell
        (with or without its terminator), -1 where they spell none."""
        return self._answer_of_state.to(generated.device)[self.answer_states(generated)]

    def decode(self, generated: torch.LongTensor) -> list[Any]:
        """`generated` (batch, steps), the tokens after the prompt -> the answer of each row (`answers`
        entries); ValueError when a row spells no answer (generated without this constraint)."""
        indices = self.answer_indices(generated).tolist()
        if -1 in indices:
            raise ValueError(
                f"rows {[row for row, index in enumerate(indices) if index == -1]} of the generated tokens "
                "spell no admissible answer; generate with this constraint and enough max_new_tokens"
            )
        return [self.answers[index] for index in indices]

    @property
    def max_answer_length(self) -> int:
        """Tokens of the longest answer, terminator excluded: enough new tokens to identify any answer."""
        return max(len(ids) - 1 for ids in self.answer_token_ids)


def answer_log_scores(
    model: Callable[..., Any], prompt_inputs: dict[str, torch.Tensor], answer_token_ids: list[list[int]]
) -> torch.Tensor:
    """`(batch, answers)` log-scores of each admissible answer after the prompt: their softmax over the set is
    the probability of each answer.

    When every answer is one token before its terminator this is one forward pass: the last position's
    log-probabilities of those tokens. Otherwise it is each answer's teacher-forced log-likelihood, terminator
    included: the cached prompt is continued by every answer at once.

    Args:
        model: a causal LM called as `model(**prompt_inputs, use_cache=..., logits_to_keep=1)` and then with
            `input_ids`, `attention_mask` and `past_key_values` (it derives position ids from the mask).
        prompt_inputs: the prompt's inputs (left-padded), with `attention_mask` `(batch, seq_len)`.
        answer_token_ids: per answer its token ids, terminator included.
    """
    single_token = all(len(ids) == 2 for ids in answer_token_ids)
    outputs = model(**prompt_inputs, use_cache=not single_token, logits_to_keep=1)
    first_log_probs = outputs.logits[:, -1].float().log_softmax(dim=-1)  # (batch, vocab)
    batch_size, num_answers = first_log_probs.shape[0], len(answer_token_ids)
    longest = max(len(ids) for ids in answer_token_ids)
    targets = torch.full((num_answers, longest), -1, dtype=torch.long, device=first_log_probs.device)
    for index, ids in enumerate(answer_token_ids):
        targets[index, : len(ids)] = torch.tensor(ids)
    first = first_log_probs[:, targets[:, 0]]  # (batch, answers)
    if single_token:
        return first
    # Every (sample, answer) pair continues the cached prompt with the answer's tokens (right-padded: the
    # padding comes after the scored positions, so causal attention never sees it).
    past_key_values = outputs.past_key_values
    past_key_values.batch_repeat_interleave(num_answers)
    attention_mask = prompt_inputs["attention_mask"]
    continuation = targets[:, :-1].clamp(min=0).repeat(batch_size, 1)  # (batch * answers, longest - 1)
    mask = torch.cat(
        [
            attention_mask.repeat_interleave(num_answers, dim=0),
            attention_mask.new_ones(batch_size * num_answers, longest - 1),
        ],
        dim=-1,
    )
    logits = model(
        input_ids=continuation, attention_mask=mask, past_key_values=past_key_values, use_cache=False
    ).logits.float()
    next_targets = targets[:, 1:].repeat(batch_size, 1)  # (batch * answers, longest - 1)
    log_probs = logits.log_softmax(dim=-1).gather(-1, next_targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    rest = log_probs.masked_fill(next_targets < 0, 0.0).sum(dim=-1).view(batch_size, num_answers)
    return first + rest
