"""harness.tasks.babi_generator's story distribution against the Lua generator's rules (facebookarchive/bAbI-tasks
WhereIsActor.lua, world_basic.txt, Teleport, SimpleTeleport) and against the released qa1 files."""
import re
from collections import Counter

import pytest

from harness.tasks import babi_generator as babi_gen
from harness.tasks import babi

MOVE = re.compile(r"^(Mary|John|Sandra|Daniel) (.+) the (\w+)\.$")


def _stats(questions_by_story):
    """verb counts, actor counts, location counts, first moves to the Lua start place / all first moves."""
    verbs, actors, places = Counter(), Counter(), Counter()
    to_start = firsts = 0
    for q in questions_by_story:
        seen = set()
        for text, ans in q.context:
            if ans is not None:
                continue
            actor, verb, place = MOVE.match(text).groups()
            verbs[verb] += 1
            actors[actor] += 1
            places[place] += 1
            if actor not in seen:
                seen.add(actor)
                firsts += 1
                to_start += babi_gen.LUA_START[actor] == place
    return verbs, actors, places, to_start / firsts


def test_lua_style_follows_the_lua_generator():
    stories = babi_gen.generate_stories(800, seed=11)
    assert len(stories) == 800 and all(len(s) == 15 for s in stories)
    for s in stories:  # "for i = 1, 15 do if i % 3 ~= 0 then <move> else <question>"
        assert [ln.answer is not None for ln in s] == [i % 3 == 0 for i in range(1, 16)]
    text = babi_gen.format_stories(stories)
    assert re.search(r"^3 Where is \w+\?\t\w+\t\d+$", text, re.M)  # Lua format: no space before the tab
    last = babi.last_question_per_story(babi.parse_babi_lines(text.splitlines(), 1))
    verbs, actors, places, to_start = _stats(last)
    assert set(verbs) == set(babi_gen.LUA_VERBS)  # 4 templates: no "went back to"
    n = sum(verbs.values())
    assert n == 800 * 10
    assert all(abs(c / n - 1 / 4) < 0.02 for c in verbs.values())  # uniform templates
    assert all(abs(c / n - 1 / 4) < 0.02 for c in actors.values())  # uniform actors
    assert all(abs(c / n - 1 / 6) < 0.02 for c in places.values())  # uniform places (5 valid each time)
    assert to_start == 0.0  # Teleport is invalid to the place the world file starts an actor in
    for q in last:  # the question is about an actor the story has placed; answer + support from the story
        actor = q.question.split()[-1].rstrip("?")
        moves = [(i + 1, MOVE.match(t).group(3)) for i, (t, a) in enumerate(q.context)
                 if a is None and t.startswith(actor + " ")]
        assert moves and moves[-1] == (q.support[0], q.answer)


def test_released_style_matches_the_released_files(data_dir):
    released = babi.load_babi(1, "test", babi.babi_dir("en", data_dir))
    real = _stats(babi.last_question_per_story(released))
    ours = _stats(babi.last_question_per_story(babi.parse_babi_lines(
        babi_gen.format_stories(babi_gen.generate_stories(800, seed=3, style="released")).splitlines())))
    assert set(real[0]) == set(ours[0]) == set(babi_gen.VERBS)  # 5 verbs incl. "went back to"
    assert 0.12 < real[3] < 0.22 and 0.12 < ours[3] < 0.22  # first moves reach the Lua start place ~1/6
    assert abs(real[3] - ours[3]) < 0.06
    for real_c, our_c in ((real[0], ours[0]), (real[1], ours[1]), (real[2], ours[2])):
        rn, on = sum(real_c.values()), sum(our_c.values())
        assert all(abs(real_c[k] / rn - our_c[k] / on) < 0.05 for k in real_c)


def test_default_output_is_unchanged_and_styles_are_checked():
    import hashlib

    a = babi_gen.format_stories(babi_gen.generate_task1(500, seed=3))
    assert "? \t" in a  # the released format, byte-identical to before the Lua style existed:
    assert hashlib.sha256(a.encode()).hexdigest()[:16] == "188ee3c6a712ce07"
    assert babi_gen.generate_stories(3, seed=1) == babi_gen.generate_stories(3, seed=1)
    assert babi_gen.generate_stories(3, seed=1) != babi_gen.generate_stories(3, seed=2)
    with pytest.raises(ValueError, match="unknown bAbI generator style 'torch'"):
        babi_gen.generate_stories(1, seed=0, style="torch")
    with pytest.raises(ValueError, match="num_stories"):
        babi_gen.generate_stories(-1, seed=0)
