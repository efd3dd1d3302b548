"""The EMT (emotion multitask) text of M2SE (arXiv 2412.08049), exactly as released: the task names, the
system prompt, the query templates EmoVerse is trained on and asked with, and the answers of the closed tasks
(`processing_emoverse` constrains generation to them, `m2se.emt` builds its records from all of it,
`pipeline_emoverse` its queries).

Only the utterance (and, for ECPE, the conversation lines) is substituted. The tags `<sentiment>`, `<emotion>`
and `<reason>` are literal text of the released templates (task markers), not placeholders.

Hub remote code: this module imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence

EMT_TASKS = ("msa", "er", "fer", "eri", "ecpe")
"""The five EMT task names, in the order of the M2SE paper (records, stage rates and recipes use them)."""

DEFAULT_SYSTEM_PROMPT = "You are an sentiment and emotion analysis expert."

CLOSED_TASK_ANSWERS: dict[str, tuple[str, ...]] = {
    "msa": ("Positive.", "Negative."),
    "er": ("Anger.", "Sadness.", "Surprise.", "Disgust.", "Joy.", "Neutral.", "Fear."),
}
"""The answers of EmoVerse's closed-set EMT tasks as its records spell them, in the order their queries list
them (ER: the MELD emotions; joy is `Joy.`, never MOSEI's `Happy.`)."""

FER_QUERY = "Detail the facial expressions used in the image."
ERI_QUERY = "<reason> What is the emotional state of the person in the video? Please tell me the reason."

ECPE_HEADER = (
    "Below is a conversation containing multiple utterances from different speakers, \n"
    "along with the corresponding emotion label for each utterance. \n"
    "Your task is to identify the indices of the candidate utterances that elicited the emotion "
    "in the target utterance.\n"
)
ECPE_FOOTER = (
    'You need to return the answer as, for example, "3_surprise,1", \n'
    "which means that the emotion of surprise in the third sentence is related to the first sentence, \n"
    "and if the emotion is related to more than one sentence, separate the sentences with \u201c;\u201d.\n"
    "The emotion-cause indices of the target utterance are:"
)


def _spoken_labels(task: str) -> str:
    """`Anger.`, ..., `Fear.` -> "anger, ..., joy, neutral or fear" (how the released queries list them)."""
    labels = [answer.removesuffix(".").lower() for answer in CLOSED_TASK_ANSWERS[task]]
    return f"{', '.join(labels[:-1])} or {labels[-1]}"


def msa_query(utterance: str) -> str:
    return (
        f"The person says: '{utterance}' <sentiment> Please determine which sentiment label in the video "
        f"represents: {_spoken_labels('msa')}."
    )


def er_query(utterance: str) -> str:
    return (
        f"The person says: '{utterance}' <emotion> Please determine which emotion label in the video "
        f"represents: {_spoken_labels('er')}."
    )


def ecpe_line(utterance_id: int, emotion: str, speaker: str, text: str) -> str:
    return f"{utterance_id}_{emotion}. {speaker}: {text}\n"


def ecpe_query(lines: Sequence[str], target_index: int) -> str:
    """The ECPE query for the utterance at 0-based `target_index` of a conversation of `ecpe_line`s."""
    if not 0 <= target_index < len(lines):
        raise ValueError(f"target_index must be in [0, {len(lines)}), got {target_index}")
    candidates = "".join(lines[:target_index]) or "\n"
    return (
        ECPE_HEADER
        + "Input conversation:"
        + "".join(lines)
        + "Candidate utterances:"
        + candidates
        + "Target utterance:"
        + lines[target_index]
        + ECPE_FOOTER
    )
