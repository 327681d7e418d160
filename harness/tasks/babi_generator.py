"""A seeded generator for bAbI task 1 (single supporting fact), in Facebook's file format.

Two styles, each a re-implementation of one source (no code copied):

  lua       what the paper ran: Facebook's Lua generator, `babi-tasks 1 10000` (LatentPixel/utils.py
            `gen_babi`, via the TYTTYTTYT/bAbI-tasks fork; that fork is not readable here, so this follows
            facebookarchive/bAbI-tasks @ ccd8fd6: lua/babi/tasks/WhereIsActor.lua, tasks/worlds/world_basic.txt,
            lua/babi/actions.lua `Teleport`, lua/babi/stringify.lua `SimpleTeleport` / `EvalIsIn`).
  released  the distribution of the released v1.2 `qa1` files (shared/data/babi), e.g. for the demo.

Shared by both (checked against the Lua code and the released files):

    actors     Mary, John, Sandra, Daniel                       (uniform)
    locations  bathroom, hallway, garden, office, bedroom, kitchen  (uniform over the 5 the actor is not at)
    stories    15 lines: 5 x (2 moves, 1 question) ("for i = 1, 15 do if i % 3 ~= 0 ... else question")
    questions  "Where is <Actor>?" about an actor chosen uniformly among those whose place the story has told;
               answer = that actor's latest location, supporting fact = the line of that move

Where the styles differ (each measured or read off the source):

    verbs      lua: "<Actor> went|journeyed|travelled|moved to the <location>." (SimpleTeleport's 4 templates,
               uniform); released: those 4 and "went back to" (5, about equally often)
    start      lua: every story's world starts with John in the kitchen, Mary in the bedroom, Sandra in the
               garden, Daniel in the hallway (world_basic.txt), untold, and Teleport is invalid to the place an
               actor is at, so an actor's FIRST move never goes to its start place; released: no such rule (a
               first move goes there about 1/6 of the time: 129 of 759 first moves in en/qa1 test)
    format     lua: "3 Where is Mary?\tbathroom\t1"; released: "3 Where is Mary? \tbathroom\t1" (a space before
               the tab). harness.tasks.babi parses both; gen_babi's regex keeps "Where is Mary?" either way
               once stripped.

Other differences from the Lua generator, by design: it seeds with os.time() (not reproducible) while every
choice here comes from one `random.Random(seed)` (same seed, same bytes); it draws (actor, location) jointly
and rejects invalid pairs (up to 100 tries), which gives the same distribution as drawing the actor and then a
location among the valid ones, as here. `babi-tasks 1 N` writes N STORIES: `generate_stories(N, seed)` does
the same; `generate_task1(num_questions, ...)` counts questions (the older API, style "released").

File format (one line each; a story restarts at line 1):

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? \tbathroom\t1

Also the offline demo's data: `python -m harness.tasks.babi_generator --out DIR --train 1000 --test 200 --seed 0`.
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

from pixar.config_io import atomic_write_text

ACTORS = ("Mary", "John", "Sandra", "Daniel")
LOCATIONS = ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen")
VERBS = ("moved to", "went to", "journeyed to", "travelled to", "went back to")  # released files
LUA_VERBS = ("went to", "journeyed to", "travelled to", "moved to")  # stringify.lua SimpleTeleport
LUA_START = {"John": "kitchen", "Mary": "bedroom", "Sandra": "garden", "Daniel": "hallway"}  # world_basic.txt
STYLES = ("released", "lua")
QUESTIONS_PER_STORY = 5
STATEMENTS_PER_QUESTION = 2
TASK1_FILE = "qa1_single-supporting-fact_{split}.txt"


@dataclass
class Line:
    number: int
    text: str
    answer: str | None = None  # set for question lines
    support: int | None = None
    style: str = "released"  # decides the question-line format only

    def format(self) -> str:
        if self.answer is None:
            return f"{self.number} {self.text}"
        gap = "" if self.style == "lua" else " "
        return f"{self.number} {self.text}{gap}\t{self.answer}\t{self.support}"


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown bAbI generator style {style!r} (known: {', '.join(STYLES)})")


def generate_story(rng: random.Random, questions: int = QUESTIONS_PER_STORY, style: str = "released") -> list[Line]:
    """One task-1 story: `questions` x (2 moves, 1 question), in `style` (see the module docstring)."""
    _check_style(style)
    verbs = LUA_VERBS if style == "lua" else VERBS
    at: dict[str, str] = dict(LUA_START) if style == "lua" else {}  # where each actor really is
    where: dict[str, tuple[str, int]] = {}  # what the story has told: actor -> (location, line of the move)
    lines: list[Line] = []
    for _ in range(questions):
        for _ in range(STATEMENTS_PER_QUESTION):
            actor = rng.choice(ACTORS)
            location = rng.choice([loc for loc in LOCATIONS if loc != at.get(actor)])  # Teleport:is_valid
            verb = rng.choice(verbs)
            n = len(lines) + 1
            lines.append(Line(n, f"{actor} {verb} the {location}.", style=style))
            where[actor] = (location, n)
            at[actor] = location
        actor = rng.choice(sorted(where))
        location, support = where[actor]
        lines.append(Line(len(lines) + 1, f"Where is {actor}?", location, support, style))
    return lines


def generate_stories(num_stories: int, seed: int, style: str = "lua") -> list[list[Line]]:
    """`num_stories` full stories (5 questions each): what `babi-tasks 1 <num_stories>` writes."""
    if num_stories < 0:
        raise ValueError(f"num_stories must be >= 0, got {num_stories}")
    rng = random.Random(seed)
    return [generate_story(rng, QUESTIONS_PER_STORY, style) for _ in range(num_stories)]


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
