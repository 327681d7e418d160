"""GPT-2 baselines: the local BPE tokenizer, parameter matching of the configs, same-budget training +
save/load round trip, greedy continuations, clear errors; the GPT-2 side of `pixar bench`."""
import json

import pytest
import torch

from harness.models.gpt2_baselines import BaselineError, greedy_continuations, gpt2_tokenizer, load_gpt2
from harness.models.gpt2_pretrain import GPT2BaselineConfig, build_gpt2, train_gpt2
from pixar.config import PixarConfig, preset_path
from pixar.model.transformer import Pixar


@pytest.fixture(scope="module")
def tok(data_dir):
    return gpt2_tokenizer(data_dir)


def test_tokenizer_is_the_real_gpt2_bpe(tok):
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert len(tok) == 50257 and tok.eos_token_id == 50256 and tok.pad_token_id == 50256
    assert tok("<|endoftext|>")["input_ids"] == [50256]
    assert tok.decode(tok(" The kitchen, Mary's.")["input_ids"]) == " The kitchen, Mary's."


@pytest.mark.parametrize("gpt2,pixar,budget", [("gpt2-tiny", "pixar-tiny", "compute"), ("gpt2-micro", "pixar-micro", "data")])
def test_configs_match_pixar_non_embedding_params(gpt2, pixar, budget):
    cfg = GPT2BaselineConfig.from_yaml(preset_path(gpt2))
    model = build_gpt2(cfg, 50257, 50256, seed=0)
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    gpt2_non_emb = sum(p.numel() for p in model.parameters()) - emb
    pcfg = PixarConfig.from_yaml(preset_path(pixar))
    px = Pixar(pcfg.model)
    px_non_emb = px.num_params() - px.embed.weight.numel() - px.head.weight.numel()
    assert cfg.matched_to == pixar and "non-embedding" in cfg.match and budget in cfg.match + " compute data"
    assert abs(gpt2_non_emb / px_non_emb - 1) < 0.02
    ptc = pcfg.train
    assert (cfg.train.max_chars, cfg.train.batch_size, cfg.train.optim.lr) == (ptc.max_chars, ptc.batch_size, ptc.optim.lr)
    if budget == "data":  # same chunks, same number of steps
        assert cfg.train.steps == ptc.steps
    else:  # same executed training FLOPs (6 x matmul params x positions), GPT-2 at ~81 padded tokens per chunk
        px_flops = 6 * px.num_params() * ptc.batch_size * pcfg.model.max_positions * ptc.steps
        gpt_flops = 6 * (gpt2_non_emb + 50257 * cfg.model.n_embd) * cfg.train.batch_size * 81.1 * cfg.train.steps
        assert abs(gpt_flops / px_flops - 1) < 0.05


def test_train_gpt2_saves_a_loadable_model(tmp_path, data_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Mary went to the kitchen. John moved to the garden. The cat sat on the mat. " * 40)
    path = train_gpt2(str(preset_path("gpt2-micro")), ["train.steps=3", f"train.data=[{corpus}]", "train.log_every=1",
                                                        "train.eval_every=3"], tmp_path / "run", data_dir)
    assert path == tmp_path / "run" / "final"
    assert {"model.safetensors", "config.json", "gpt2_config.json", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    assert not any(p.suffix == ".bin" for p in path.iterdir())
    meta = json.loads((path / "gpt2_config.json").read_text())
    assert meta["matched_to"] == "pixar-micro" and meta["steps"] == 3 and meta["non_embedding_params"] == 108352
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3] and "val_loss" in log[0] and "val_loss" in log[-1]
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(log[1]) and meta["final"]["step"] == 3
    assert (tmp_path / "run" / "last").is_file() and (tmp_path / "run" / "step-0000003" / "model.safetensors").is_file()
    model, tok2, info = load_gpt2(str(path))
    assert info["name"] == "gpt2-micro" and tok2("Hello world")["input_ids"] == [15496, 995]
    x = torch.tensor([[15496, 995, 13]])
    with torch.no_grad():
        a = model(x).logits
        b = load_gpt2(str(path))[0](x).logits
    torch.testing.assert_close(a, b)
    out = greedy_continuations(model, tok2, ["Mary went to the", "a", "John moved to the garden and then"],
                               max_new_tokens=3, batch_size=2, progress=False)
    assert out == [greedy_continuations(model, tok2, [p], 3, progress=False)[0]
                   for p in ["Mary went to the", "a", "John moved to the garden and then"]]


def test_train_gpt2_with_a_corpus_vocabulary_resumes_and_reloads_restricted(tmp_path, data_dir):
    """vocab: corpus through the run machinery: the output layer has the corpus's BPE tokens + UNSEEN, the
    published folder records and reloads the same restriction, and a resumed run rebuilds the same tokenizer."""
    from pixar.config_io import ConfigError

    from harness.models.gpt2_vocab import RestrictedTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Mary went to the kitchen. John moved to the garden. " * 40)
    sets = ["vocab=corpus", "train.steps=2", f"train.data=[{corpus}]", "train.eval_every=2", "train.save_every=1"]
    path = train_gpt2(str(preset_path("gpt2-micro")), sets, tmp_path / "run", data_dir)
    meta = json.loads((path / "gpt2_config.json").read_text())
    model, tok2, _ = load_gpt2(str(path))
    assert isinstance(tok2, RestrictedTokenizer) and meta["vocab"]["vocab"] == "corpus"
    assert model.config.vocab_size == len(tok2) == meta["vocab"]["vocab_size"] < 50
    assert tok2.decode(tok2(" Mary went to the garden.")["input_ids"]) == " Mary went to the garden."
    again = train_gpt2(str(preset_path("gpt2-micro")), [*sets[:1], "train.steps=3", *sets[2:]], tmp_path / "run",
                       data_dir, resume="true")
    assert json.loads((again / "gpt2_config.json").read_text())["vocab"] == meta["vocab"]
    with pytest.raises(ConfigError, match="vocab must be full or corpus"):
        train_gpt2(str(preset_path("gpt2-micro")), ["vocab=bytes"], tmp_path / "bad", data_dir)


def test_load_gpt2_errors_are_clear(tmp_path):
    with pytest.raises(BaselineError, match="gpt2-does-not-exist"):
        load_gpt2("gpt2-does-not-exist")  # offline, not cached
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaselineError, match="cannot load GPT-2 folder"):
        load_gpt2(str(tmp_path / "empty"))


def test_cli_bench_lambada_with_gpt2_baseline(tmp_path, data_dir, tok):
    from click.testing import CliRunner
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.models.gpt2_pretrain import save_gpt2
    from harness.cli.bench import bench

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=256))
    base = save_gpt2(model, tok, tmp_path / "gpt2-random", {"name": "gpt2-random", "match": "none (test)"})
    out = tmp_path / "res"
    r = CliRunner().invoke(bench, ["lambada", "--baseline", str(base), "--limit", "2", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    row = summary["rows"][0]
    assert row["kind"] == "gpt2" and row["match"] == "none (test)"
    assert {"lm_eval_acc_token", "lm_eval_token_nll", "lm_eval_token_ppl"} <= set(row)
    assert not any("pixel" in k for k in row)
    # the paper protocol for a text model: one reading (its greedy text), scored as evaluate_gpt2.py
    paper = {m["metric"]: m for m in summary["metrics"] if m["protocol"] == "lambada:paper"
             and m["model"].startswith("gpt2:")}
    assert set(paper) == {"acc_text", "readability", "readability_strict", "distinct_answers", "top_answer_share"}
    assert all(m["n"] == 2 for m in paper.values())
    assert summary["fits"][0]["cut"] == 0 and summary["fits"][0]["unit"] == "tokens"  # 256 positions: nothing cut
    from harness.eval.bench import run_lambada

    official = run_lambada(None, [str(base)], tmp_path / "official", limit=2, protocols=("paper-gpt2-official",))
    rows = [m for m in official["metrics"] if m["model"].startswith("gpt2:")]
    assert {m["protocol"] for m in rows} == {"lambada:paper-gpt2-official"} and rows[0]["n"] == 2
    spec = official["protocol_specs"]["lambada:paper-gpt2-official"]
    assert spec["text_decoding"] == "hf-max-length-5-greedy" and "max_length=5" in spec["official"]
    preds = [json.loads(x) for x in (out / "predictions-gpt2_gpt2-random-lambada_paper.jsonl").read_text().splitlines()]
    assert len(preds) == 2 and all(set(p["read"]) == {"text"} and isinstance(p["read"]["text"], str) for p in preds)
    assert all(p["correct"]["text"] == (p["read"]["text"].strip().split()[:1] == [p["target"]]) for p in preds)


def _tiny_gpt2(tok, n_positions=64):
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2,
                                          n_positions=n_positions)).eval()


PROMPTS = ["Mary moved to the bathroom. Where is Mary? |", "John went to the hallway. Sandra went to the garden. "
           "Where is John? |", "The cat sat on the", "Hi"]


def test_official_gpt2_decoding_is_max_length_5_total(tok):
    """evaluate_gpt2.py's generator(prompt, max_length=5): HF counts the prompt, so under the authors' transformers
    4.34.1 (their environment.yml) a prompt of >= 5 tokens got a warning and one new token (MaxLengthCriteria stops
    after the first step); transformers 4.57 raises instead. Ours gives 5 greedy new tokens. Our decoder agrees with
    HF generate on both."""
    from harness.models.gpt2_runner import decode, official_new_tokens

    model = _tiny_gpt2(tok)
    assert [official_new_tokens(len(tok(p)["input_ids"])) for p in PROMPTS] == [1, 1, 1, 4]
    ours5 = decode(model, tok, PROMPTS, [5] * 4, False, 0, list(range(4)), batch_size=3)
    assert ours5 == greedy_continuations(model, tok, PROMPTS, 5, batch_size=3, progress=False)
    for p in PROMPTS:
        ids = torch.tensor([tok(p)["input_ids"]])
        new = official_new_tokens(ids.shape[1])
        limit = {"max_length": 5} if ids.shape[1] < 5 else {"max_new_tokens": 1}  # 4.34.1: one step past max_length
        hf = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            pad_token_id=tok.eos_token_id, **limit)
        assert hf.shape[1] - ids.shape[1] == new
        assert decode(model, tok, [p], [new], False, 0, [0]) == [tok.decode(hf[0, ids.shape[1]:])]
    ids = torch.tensor([tok(PROMPTS[0])["input_ids"]])
    with pytest.raises(ValueError, match="max_length"):  # today's transformers refuses the official call outright
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_length=5, pad_token_id=tok.eos_token_id)


def test_official_gpt2_babi_sampling_is_seeded_per_example(tok):
    from harness.models.gpt2_runner import GPT2Runner, TEXT_DECODERS
    from harness.eval.protocols import get_protocol

    spec = get_protocol("babi", "paper-gpt2-official")
    assert spec.text_only and spec.text_decoding == "hf-max-length-5-sample" and spec.babi_stories == 5000
    model = _tiny_gpt2(tok)
    a = GPT2Runner(model, tok, batch_size=1, seed=3).protocol_reads(spec, PROMPTS[:3], ids=[7, 8, 9])[0]["text"]
    b = GPT2Runner(model, tok, batch_size=3, seed=3).protocol_reads(spec, PROMPTS[:3], ids=[7, 8, 9])[0]["text"]
    assert a == b  # the same draws whatever the batching
    assert all(len(tok(t)["input_ids"]) <= 2 for t in a)  # one new token (its decoded text may re-tokenise to 2)
    draws = {tuple(GPT2Runner(model, tok, seed=s).protocol_reads(spec, PROMPTS[:3], ids=[7, 8, 9])[0]["text"])
             for s in range(4)}
    assert len(draws) > 1  # sampled, not greedy (a random model's next-token distribution is nearly flat)
    assert set(TEXT_DECODERS) == {"greedy-5-new", "hf-max-length-5-greedy", "hf-max-length-5-sample"}
    room, cuts = GPT2Runner(_tiny_gpt2(tok, 8), tok).prompt_cuts(spec, PROMPTS)
    assert room == 7 and cuts == [True, True, False, False]  # 12 and 20 tokens do not fit 8 - 1
