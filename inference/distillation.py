"""Context distillation of an adversarial debater into a LoRA adapter.

1. The base model, *prompted* to argue for an incorrect answer (the debater prompt
   names the answer it must defend), writes an argument for each question.
2. Those arguments become training targets for a *neutral* prompt that no longer
   says which answer to argue for (it shows the source, the question and both
   answers, and asks for an argument).
3. A LoRA adapter is trained on (neutral prompt -> argument for the wrong answer),
   with the loss on the argument tokens only.

The adapted model then argues for the wrong answer without being told to. Runs on
the CPU for the small model (minutes) and on a GPU for bigger ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import GenerationRequest
from .transformers_backend import resolve_model_path

# (question, my position, my answer, the other answer) -> the chat messages of a prompted adversary.
PromptedMessages = Callable[[object, str, str, str], list[dict]]

NEUTRAL_TEMPLATE = """Source text: {passage}

Question: {question}
Answer A: {answer_a}
Answer B: {answer_b}

You are Debater {me}. Write your argument."""


@dataclass
class DistillationReport:
    examples: int
    loss_before: float
    loss_after: float
    adapter_path: Path


def neutral_messages(*, passage: str, question: str, answer_a: str, answer_b: str, me: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": NEUTRAL_TEMPLATE.format_map(
                {
                    "passage": passage or "(none)",
                    "question": question,
                    "answer_a": answer_a,
                    "answer_b": answer_b,
                    "me": me,
                }
            ),
        }
    ]


def build_examples(
    backend, questions, prompted_messages: PromptedMessages, *, seed: int = 0, max_new_tokens: int = 96
) -> list[tuple[list[dict], str]]:
    """(neutral messages, target argument) pairs: the base model's arguments for wrong answers when
    prompted by ``prompted_messages`` (the debater prompt, which names the answer to defend).
    ``questions`` have ``text``, ``choices``, ``correct_index`` and ``passage``."""
    rng = random.Random(seed)
    layouts, requests = [], []
    for q in questions:
        wrong = rng.choice([i for i in range(len(q.choices)) if i != q.correct_index])
        me = rng.choice("AB")  # which position the adversary's (wrong) answer is shown in
        answers = {me: q.choices[wrong], ("B" if me == "A" else "A"): q.choices[q.correct_index]}
        layouts.append((q, me, answers))
        prompted = prompted_messages(q, me, answers[me], answers["B" if me == "A" else "A"])
        requests.append(
            GenerationRequest(messages=prompted, max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.95, seed=seed)
        )
    arguments = backend.generate(requests)
    return [
        (
            neutral_messages(passage=q.passage, question=q.text, answer_a=answers["A"], answer_b=answers["B"], me=me),
            argument.text,
        )
        for (q, me, answers), argument in zip(layouts, arguments)
        if argument.text
    ]


def train_lora(
    backend, examples, output: Path, *, epochs: int = 2, lr: float = 2e-4, rank: int = 8, seed: int = 0
) -> DistillationReport:
    """Train a LoRA adapter on the examples and save it to ``output``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    backend._load()  # for its tokenizer and chat template
    tokenizer = backend._tokenizer
    # A fresh copy of the base weights: the worker's cached model is never modified.
    base = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(backend.model_name, backend.cache_dir), dtype=torch.float32
    ).to(backend._device)
    batches = []
    for messages, target in examples:
        prompt = backend._prompt_text(messages)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(target + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + target_ids], device=base.device)
        labels = torch.tensor([[-100] * len(prompt_ids) + target_ids], device=base.device)  # loss on the argument
        batches.append((ids, labels))
    model = get_peft_model(
        base,
        LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules="all-linear"),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    def mean_loss():
        model.eval()
        with torch.no_grad():
            return sum(model(input_ids=ids, labels=labels).loss.item() for ids, labels in batches) / len(batches)

    before = mean_loss()
    model.train()
    for _ in range(epochs):
        for ids, labels in batches:
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    after = mean_loss()
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    return DistillationReport(examples=len(batches), loss_before=before, loss_after=after, adapter_path=output)
