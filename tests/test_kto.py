"""The `kto` stage (TRL's KTOTrainer), added through the stage interface: one module, one registry entry.

A real run on the tiny random model changes the trainable weights; validation checks its rows (`label` present and
true/false) and its batch size before anything loads.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import CHAT, preference_rows, write_jsonl, write_recipe
from rlft.errors import RecipeError
from rlft.run import run
from rlft.stages import load


def unpaired_rows() -> list[dict]:
    rows = []
    for q, a in CHAT:
        prompt = [{"role": "user", "content": q}]
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": a}], "label": True})
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": "Go away."}], "label": False})
    return rows


def test_kto_trains_the_weights(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "kto.jsonl", unpaired_rows())
    recipe = write_recipe(tmp_path / "r.yaml", f"""name: k
model: {tiny_model_dir}
seed: 0
stages:
  - name: kto
    type: kto
    data: {{train: kto.jsonl}}
    args: {{max_steps: 2, per_device_train_batch_size: 4, learning_rate: 1.0e-2, max_length: 128}}
""")
    root = run(recipe, output_dir=str(tmp_path / "run"))
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(root / "stages/00_kto/model.safetensors")
    assert sum(not torch.equal(before[k], after[k]) for k in before if k in after) > 5
    logged = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["stage"] == "kto" and "loss" in r] == [1, 2]


def test_kto_rows_and_batch_size_are_checked_before_anything_loads(tmp_path, tiny_model_dir):
    rows = unpaired_rows()
    write_jsonl(tmp_path / "no_label.jsonl", [{k: v for k, v in r.items() if k != "label"} for r in rows])
    write_jsonl(tmp_path / "word_label.jsonl", [rows[0], {**rows[1], "label": "no"}])
    write_jsonl(tmp_path / "ok.jsonl", rows)
    write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    recipe = write_recipe(tmp_path / "r.yaml", f"""name: k
model: {tiny_model_dir}
stages:
  - {{name: a, type: kto, data: {{train: no_label.jsonl, format: unpaired_preference}}}}
  - {{name: b, type: kto, data: {{train: word_label.jsonl}}}}
  - {{name: c, type: kto, data: {{train: ok.jsonl}}, args: {{per_device_train_batch_size: 1}}}}
  - {{name: d, type: kto, data: {{train: prefs.jsonl}}, args: {{per_device_train_batch_size: 2}}}}
""")
    with pytest.raises(RecipeError) as e:
        load(recipe)
    problems = e.value.problems
    assert len(problems) == 3, problems
    assert "stages[0].data.train: no_label.jsonl: format 'unpaired_preference' needs column(s) ['label']" in problems[0]
    assert problems[1] == ("stages[1].data.train: word_label.jsonl: row 2: column 'label' must be true "
                           "(a desirable completion) or false, got 'no'")
    assert problems[2].startswith("stages[2].args.per_device_train_batch_size: 1: KTO estimates its KL term")


@pytest.mark.parametrize("label", [1, 0, None, "yes"])
def test_kto_labels_that_are_not_true_or_false_are_reported(label, tmp_path, tiny_model_dir):
    """Datasets often use 1/0 or leave a label out: each is a row error, not a silent cast or a traceback."""
    rows = unpaired_rows()
    write_jsonl(tmp_path / "bad.jsonl", [rows[0], {**rows[1], "label": label}])
    recipe = write_recipe(tmp_path / "r.yaml", f"""name: k
model: {tiny_model_dir}
stages:
  - {{name: a, type: kto, data: {{train: bad.jsonl}}}}
""")
    with pytest.raises(RecipeError) as e:
        load(recipe)
    assert len(e.value.problems) == 1, e.value.problems
    assert "stages[0].data.train: bad.jsonl" in e.value.problems[0] and "label" in e.value.problems[0]


def test_kto_unpaired_apo_zero_takes_a_batch_of_one(tmp_path, tiny_model_dir):
    """apo_zero_unpaired has no KL term estimated from the batch: batch size 1 is allowed there."""
    write_jsonl(tmp_path / "ok.jsonl", unpaired_rows())
    recipe = write_recipe(tmp_path / "r.yaml", f"""name: k
model: {tiny_model_dir}
stages:
  - {{name: a, type: kto, data: {{train: ok.jsonl}}, args: {{per_device_train_batch_size: 1, loss_type: apo_zero_unpaired}}}}
""")
    load(recipe)


def test_kto_random_sampling_is_refused_before_anything_loads(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "ok.jsonl", unpaired_rows())
    recipe = write_recipe(tmp_path / "r.yaml", f"""name: k
model: {tiny_model_dir}
stages:
  - {{name: a, type: kto, data: {{train: ok.jsonl}}, args: {{train_sampling_strategy: random}}}}
""")
    with pytest.raises(RecipeError) as e:
        load(recipe)
    assert e.value.problems[0].startswith("stages[0].args.train_sampling_strategy: 'random': KTO's KL term")
