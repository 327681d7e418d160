"""A seeded generator for bAbI task 1 (single supporting fact), in Facebook's file format.

The paper sampled 10,000 task-1 questions from Facebook's Lua generator (`babi-tasks 1 10000`); this
is a re-implementation of that task's world, checked against the released `qa1` files:

    actors     Mary, John, Sandra, Daniel
    locations  bathroom, hallway, garden, office, bedroom, kitchen
    moves      "<Actor> moved|went|journeyed|travelled|went back to the <location>."
               (the released files use all five verbs about equally; an actor never "moves" to the
               place it already is)
    questions  "Where is <Actor>?" after every 2 statements, about an actor whose place is known;
               answer = that actor's latest location, supporting fact = the line of that move
    stories    5 questions each (15 lines), numbered from 1 like the released files

File format (one line each; a story restarts at line 1):

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? \tbathroom\t1

Every random choice comes from one `random.Random(seed)`; the same seed gives the same bytes.
Also the offline demo's data: `python -m harness.babi_gen --out DIR --train 1000 --test 200 --seed 0`.
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

from pixar.config import atomic_write_text

ACTORS = ("Mary", "John", "Sandra", "Daniel")
LOCATIONS = ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen")
VERBS = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
QUESTIONS_PER_STORY = 5
STATEMENTS_PER_QUESTION = 2
TASK1_FILE = "qa1_single-supporting-fact_{split}.txt"


@dataclass
class Line:
    number: int
    text: str
    answer: str | None = None  # set for question lines
    support: int | None = None

    def format(self) -> str:
        if self.answer is None:
            return f"{self.number} {self.text}"
        return f"{self.number} {self.text} \t{self.answer}\t{self.support}"


def generate_story(rng: random.Random, questions: int = QUESTIONS_PER_STORY) -> list[Line]:
    """One task-1 story: `questions` x (2 moves, 1 question)."""
    where: dict[str, tuple[str, int]] = {}  # actor -> (location, line number of the move)
    lines: list[Line] = []
    for _ in range(questions):
        for _ in range(STATEMENTS_PER_QUESTION):
            actor = rng.choice(ACTORS)
            here = where.get(actor, (None, 0))[0]
            location = rng.choice([loc for loc in LOCATIONS if loc != here])
            verb = rng.choice(VERBS)
            n = len(lines) + 1
            lines.append(Line(n, f"{actor} {verb} the {location}."))
            where[actor] = (location, n)
        actor = rng.choice(sorted(where))
        location, support = where[actor]
        lines.append(Line(len(lines) + 1, f"Where is {actor}?", location, support))
    return lines


def generate_task1(num_questions: int, seed: int) -> list[list[Line]]:
    """Stories holding exactly `num_questions` questions (the last story may be shorter)."""
    if num_questions < 0:
        raise ValueError(f"num_questions must be >= 0, got {num_questions}")
    rng = random.Random(seed)
    stories = []
    left = num_questions
    while left > 0:
        q = min(QUESTIONS_PER_STORY, left)
        stories.append(generate_story(rng, q))
        left -= q
    return stories


def format_stories(stories: list[list[Line]]) -> str:
    return "".join(line.format() + "\n" for story in stories for line in story)


def write_task1(out_dir: str | Path, train: int, test: int, seed: int) -> dict[str, Path]:
    """Write qa1 train/test files (different seeds per split) into out_dir, atomically."""
    out_dir = Path(out_dir)
    paths = {}
    for offset, (split, n) in enumerate((("train", train), ("test", test))):
        path = out_dir / TASK1_FILE.format(split=split)
        atomic_write_text(path, format_stories(generate_task1(n, seed * 2 + offset)))
        paths[split] = path
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate bAbI task 1 (single supporting fact) in the standard format.")
    p.add_argument("--out", required=True, help="Folder for qa1_single-supporting-fact_{train,test}.txt")
    p.add_argument("--train", type=int, default=10000, help="Questions in the train split.")
    p.add_argument("--test", type=int, default=1000, help="Questions in the test split.")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for split, path in write_task1(args.out, args.train, args.test, args.seed).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
