"""Regenerate released_code.json: run the authors' advantage functions on random batches.

Usage (in a throwaway environment with numpy, torch, networkx and matplotlib; nothing here is imported by
the project or its tests)::

    python generate_released.py G2PO_CHECKOUT VERL_AGENT_CHECKOUT released_code.json

G2PO_CHECKOUT is a checkout of Nala-YN/G2PO, VERL_AGENT_CHECKOUT one of a verl-agent tree with recipe/hgpo,
recipe/GraphGPO and gigpo (zzj1111/alfworldauto). The released files are executed from those checkouts with
a minimal stand-in for verl's DataProto; the script runs twice, as released and with float32 replaced by
float64 (PROXMO_FLOAT64=1), to tell rounding from logic.
"""
import ast
import json
import os
import subprocess
import sys
import types

import numpy as np
import torch

FLOAT64 = os.environ.get("PROXMO_FLOAT64") == "1"
if FLOAT64:
    torch.set_default_dtype(torch.float64)
    torch.float32 = torch.float64
    np.float32 = np.float64

G2PO_ROOT, VERL_AGENT_ROOT = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else (".", ".")


class DataProto:
    def __init__(self, batch, non_tensor_batch):
        self.batch = batch
        self.non_tensor_batch = non_tensor_batch

    def __len__(self):
        return len(next(iter(self.non_tensor_batch.values())))


verl = types.ModuleType("verl")
verl.DataProto = DataProto
verl_utils = types.ModuleType("verl.utils")
tf = types.ModuleType("verl.utils.torch_functional")
source = open(os.path.join(G2PO_ROOT, "verl/utils/torch_functional.py")).read()
tree = ast.parse(source)
keep = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in ("masked_mean", "masked_var", "masked_whiten")]
tf.torch = torch
exec(compile(ast.Module(body=keep, type_ignores=[]), "torch_functional.py", "exec"), tf.__dict__)
verl.utils = verl_utils
verl_utils.torch_functional = tf
sys.modules.update({"verl": verl, "verl.utils": verl_utils, "verl.utils.torch_functional": tf})


def load(name, filename):
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(open(module.__file__).read(), filename, "exec"), module.__dict__)
    return module


core_algos = load("core_algos", os.path.join(G2PO_ROOT, "verl/trainer/ppo/core_algos.py"))
core_g2po = load("core_g2po", os.path.join(G2PO_ROOT, "g2po/core_g2po.py"))
gigpo_pkg = types.ModuleType("gigpo")
sys.modules["gigpo"] = gigpo_pkg
core_gigpo = load("gigpo.core_gigpo", os.path.join(VERL_AGENT_ROOT, "gigpo/core_gigpo.py"))
gigpo_pkg.core_gigpo = core_gigpo
core_hgpo = load("core_hgpo", os.path.join(VERL_AGENT_ROOT, "recipe/hgpo/core_hgpo.py"))
core_graph = load("core_graph", os.path.join(VERL_AGENT_ROOT, "recipe/GraphGPO/core_graph.py"))


# ---------------------------------------------------------------- batches
def make_batch(seed, n_groups=4, n_traj=6, max_steps=7, n_states=4, p_win=0.45, p_invalid=0.2, max_tokens=12,
               edge_cases=False, failed_final="unique"):
    """Rows as dicts, in an interleaved batch order that keeps each trajectory's steps in order."""
    rng = np.random.default_rng(seed)
    trajs = []
    for g in range(n_groups):
        uid = f"task-{(g * 7919 + seed) % 1000:03d}"
        states = [f"room {g} state {k}: you see a {['mug', 'cup', 'pan', 'apple', 'knife', 'lamp'][k % 6]}" for k in range(n_states)]
        for j in range(n_traj):
            length = int(rng.integers(1, max_steps + 1))
            anchors = [states[0]] + [states[int(rng.integers(0, n_states))] for _ in range(length - 1)]
            won = bool(rng.random() < p_win)
            trajs.append(dict(uid=uid, traj=f"{uid}-{rng.integers(0, 10**6):06d}-{j}", anchors=anchors, won=won))
    if edge_cases:
        # one-row group; one-trajectory group; a group of identical winning trajectories; an all-failed group
        trajs.append(dict(uid="edge-single-row", traj="edge-single-row-0", anchors=["alone"], won=True))
        trajs.append(dict(uid="edge-one-traj", traj="edge-one-traj-0", anchors=["s0", "s1", "s0"], won=False))
        for j in range(4):
            trajs.append(dict(uid="edge-identical-wins", traj=f"edge-identical-{j}", anchors=["start", "mid", "near"], won=True))
        for j in range(3):
            trajs.append(dict(uid="edge-all-fail", traj=f"edge-fail-{j}", anchors=["f0", "f1", "f0", "f2"][: 2 + j], won=False))
    rows_by_traj = []
    for tr in trajs:
        rows = []
        length = len(tr["anchors"])
        for t, anchor in enumerate(tr["anchors"]):
            last = t == length - 1
            if last:
                if tr["won"]:
                    next_obs = "success"
                elif failed_final == "unique":
                    next_obs = f"final observation of {tr['traj']}"
                else:  # sometimes a state that others pass through
                    next_obs = tr["anchors"][0] if rng.random() < 0.5 else f"final observation of {tr['traj']}"
            else:
                next_obs = tr["anchors"][t + 1]
            rows.append(dict(group=tr["uid"], traj=tr["traj"], t=t, reward=10.0 if (last and tr["won"]) else 0.0,
                             invalid=bool(rng.random() < p_invalid), won=tr["won"], anchor=anchor,
                             tokens=int(rng.integers(1, max_tokens + 1)), next_anchor=next_obs))
        rows_by_traj.append(rows)
    # interleave: repeatedly take the next row of a random unfinished trajectory
    order = []
    cursors = [0] * len(rows_by_traj)
    remaining = [i for i in range(len(rows_by_traj))]
    while remaining:
        i = remaining[int(rng.integers(0, len(remaining)))]
        order.append(rows_by_traj[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(rows_by_traj[i]):
            remaining.remove(i)
    return order


def tensors(rows, penalty):
    n = len(rows)
    width = max(r["tokens"] for r in rows)
    mask = torch.zeros(n, width, dtype=torch.float32)
    token_rewards = torch.zeros(n, width, dtype=torch.float32)
    episode = {}
    for r in rows:
        episode[r["traj"]] = episode.get(r["traj"], 0.0) + r["reward"]
    for i, r in enumerate(rows):
        mask[i, : r["tokens"]] = 1
        token_rewards[i, r["tokens"] - 1] = episode[r["traj"]]
        # the trainer's penalty hook, on the last token
        token_rewards[i, r["tokens"] - 1] -= penalty * float(r["invalid"])
    return token_rewards, mask, np.array([episode[r["traj"]] for r in rows])


def arr(rows, key):
    values = np.empty(len(rows), dtype=object)
    values[:] = [r[key] for r in rows]
    return values


def per_row(scores, rows):
    return [float(scores[i, 0]) for i in range(len(rows))]


def data_proto(rows, episode_rewards, token_rewards):
    n = len(rows)
    return DataProto(
        batch={"input_ids": torch.zeros(n, 1, dtype=torch.long), "responses": torch.zeros(n, token_rewards.shape[1], dtype=torch.long)},
        non_tensor_batch={
            "uid": arr(rows, "group"), "traj_uid": arr(rows, "traj"), "anchor_obs": arr(rows, "anchor"),
            "next_obs": arr(rows, "next_anchor"), "text_actions": np.array(["act"] * n, dtype=object),
            "episode_rewards": np.asarray(episode_rewards, dtype=np.float32),
            "rewards": np.array([r["reward"] for r in rows], dtype=np.float32),
            "active_masks": np.ones(n, dtype=bool),
            "is_action_valid": np.array([0.0 if r["invalid"] else 1.0 for r in rows], dtype=np.float32),
        },
    )


def penalised(step_rewards, rows, penalty):
    out = step_rewards.clone()
    for i, r in enumerate(rows):
        out[i] -= penalty * float(r["invalid"])
    return out


# ---------------------------------------------------------------- methods
def run(method, rows, options):
    penalty = options.get("invalid_penalty", 0.1)
    token_rewards, mask, episode_rewards = tensors(rows, penalty)
    index, traj = arr(rows, "group"), arr(rows, "traj")
    if method == "grpo":
        scores, _ = core_algos.compute_grpo_outcome_advantage(token_rewards, mask, index, traj, norm_adv_by_std_in_grpo=True)
    elif method == "drgrpo":
        scores, _ = core_algos.compute_grpo_outcome_advantage(token_rewards, mask, index, traj, norm_adv_by_std_in_grpo=False)
    elif method == "rloo":
        scores, _ = core_algos.compute_rloo_outcome_advantage(token_rewards, mask, index, traj)
    elif method == "reinforce_pp_baseline":
        if not options.get("tokens", True):
            token_rewards, mask = token_rewards.sum(-1, keepdim=True), torch.ones(len(rows), 1, dtype=torch.float32)
        scores, _ = core_algos.compute_reinforce_plus_plus_baseline_outcome_advantage(token_rewards, mask, index, traj)
    elif method == "gigpo":
        data = data_proto(rows, episode_rewards, token_rewards)
        step = penalised(core_gigpo.compute_step_discounted_returns(data, options["gamma"]), rows, penalty)
        scores, _ = core_gigpo.compute_gigpo_outcome_advantage(token_rewards, step, mask, arr(rows, "anchor"), index, traj,
                                                               step_advantage_w=options["step_weight"], mode=options["mode"])
    elif method == "hgpo":
        data = data_proto(rows, episode_rewards, token_rewards)
        step = penalised(core_hgpo.compute_step_discounted_returns(data, options["gamma"]), rows, penalty)
        scores, _ = core_hgpo.compute_hgpo_outcome_advantage(
            token_rewards, step, mask, arr(rows, "anchor"), index, traj, history_length=options["history_length"],
            mode=options["mode"], length_weight_alpha=options["alpha"], base_group=options["base_group"])
    elif method == "g2po":
        data = data_proto(rows, episode_rewards, token_rewards)
        values, group_idx, next_group_idx = core_g2po.compute_group_aggregation_values(data)
        scores, _ = core_g2po.compute_g2po_outcome_advantage(
            token_rewards, values, mask, index, traj, group_idx, next_group_idx,
            np.array([0 if r["invalid"] else 1 for r in rows]), step_advantage_w=options["step_weight"], mode=options["mode"])
    elif method == "graphgpo":
        data = data_proto(rows, episode_rewards, token_rewards)
        graphs = core_graph.ComplexGraph.from_data(data)
        core_graph.ComplexGraph.Calculate_all_shortest_path(graphs)
        step = core_graph.compute_graph_path_returns(data, graphs, options["graph_gamma"], options["normalize_distance"])
        step = penalised(step, rows, penalty)
        scores, _ = core_graph.compute_graphgpo_outcome_advantage(
            token_rewards, step, mask, arr(rows, "anchor"), index, traj, step_advantage_w=options["step_weight"],
            episode_advantage_w=options["episode_weight"], mode=options["mode"])
    else:
        raise ValueError(method)
    return per_row(scores, rows)


CASES = {
    "grpo": [{}],
    "drgrpo": [{}],
    "rloo": [{}],
    "reinforce_pp_baseline": [{"tokens": True}, {"tokens": False}],
    "gigpo": [{"gamma": 0.95, "mode": "mean_std_norm", "step_weight": 1.0}, {"gamma": 0.95, "mode": "mean_norm", "step_weight": 1.0}],
    "hgpo": [
        {"gamma": 0.95, "history_length": 2, "alpha": 1.0, "mode": "mean_std_norm", "base_group": False},
        {"gamma": 0.95, "history_length": 2, "alpha": 1.0, "mode": "mean_std_norm", "base_group": True},
        {"gamma": 0.5, "invalid_penalty": 0.25, "history_length": 2, "alpha": 1.0, "mode": "mean_std_norm", "base_group": False},
        {"gamma": 0.95, "history_length": 4, "alpha": 0.0, "mode": "mean_norm", "base_group": False},
        {"gamma": 0.95, "history_length": 1, "alpha": 2.0, "mode": "mean_norm", "base_group": True},
    ],
    "g2po": [{"mode": "mean_std_norm", "step_weight": 1.0}, {"mode": "mean_norm", "step_weight": 0.5}],
    "graphgpo": [
        {"graph_gamma": 0.1, "normalize_distance": False, "mode": "mean_std_norm", "step_weight": 1.0, "episode_weight": 1.0},
        {"graph_gamma": 0.2, "normalize_distance": True, "mode": "mean_std_norm", "step_weight": 1.0, "episode_weight": 1.0},
        {"graph_gamma": 0.1, "normalize_distance": False, "mode": "mean_norm", "step_weight": 0.5, "episode_weight": 0.0},
    ],
}

BATCHES = [
    dict(seed=11),
    dict(seed=12, n_groups=3, n_traj=8, max_steps=9, n_states=3),
    dict(seed=13, n_groups=3, n_traj=5, max_steps=6, n_states=5, edge_cases=True),
    dict(seed=14, n_groups=3, n_traj=6, max_steps=8, n_states=3, failed_final="shared"),
]


def run_all():
    result = {"batches": [], "float64": FLOAT64}
    for spec in BATCHES:
        rows = make_batch(**spec)
        outputs = []
        for method, cases in CASES.items():
            for options in cases:
                if method != "graphgpo" and spec.get("failed_final") == "shared":
                    continue
                values = run(method, rows, options)
                outputs.append({"method": method, "options": options, "advantages": values})
        result["batches"].append({"generator": spec, "rows": rows, "outputs": outputs})
    return result


def commit_of(root):
    return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None


def main(out):
    both = {}
    for wide in (False, True):
        env = {**os.environ, "PROXMO_FLOAT64": "1" if wide else "0", "PROXMO_RELEASED_PART": "1"}
        done = subprocess.run([sys.executable, __file__, G2PO_ROOT, VERL_AGENT_ROOT, "-"], env=env, check=True,
                              capture_output=True, text=True)
        both[wide] = json.loads(done.stdout.strip().splitlines()[-1])
    g2po, verl_agent = commit_of(G2PO_ROOT), commit_of(VERL_AGENT_ROOT)
    provenance = {}
    for method, (root, commit, where) in {
        "grpo": ("Nala-YN/G2PO", g2po, "verl/trainer/ppo/core_algos.py: compute_grpo_outcome_advantage"),
        "drgrpo": ("Nala-YN/G2PO", g2po, "verl/trainer/ppo/core_algos.py: compute_grpo_outcome_advantage "
                   "(norm_adv_by_std_in_grpo=False)"),
        "rloo": ("Nala-YN/G2PO", g2po, "verl/trainer/ppo/core_algos.py: compute_rloo_outcome_advantage"),
        "reinforce_pp_baseline": ("Nala-YN/G2PO", g2po, "verl/trainer/ppo/core_algos.py: "
                                  "compute_reinforce_plus_plus_baseline_outcome_advantage (verl/utils/torch_functional.py: "
                                  "masked_whiten)"),
        "g2po": ("Nala-YN/G2PO", g2po, "g2po/core_g2po.py: compute_group_aggregation_values, "
                 "compute_g2po_outcome_advantage"),
        "gigpo": ("zzj1111/alfworldauto", verl_agent, "gigpo/core_gigpo.py: compute_step_discounted_returns, the "
                  "trainer's invalid-action penalty, compute_gigpo_outcome_advantage"),
        "hgpo": ("zzj1111/alfworldauto", verl_agent, "recipe/hgpo/core_hgpo.py: compute_step_discounted_returns, the "
                 "trainer's invalid-action penalty, compute_hgpo_outcome_advantage"),
        "graphgpo": ("zzj1111/alfworldauto", verl_agent, "recipe/GraphGPO/core_graph.py: ComplexGraph.from_data, "
                     "Calculate_all_shortest_path, compute_graph_path_returns, the trainer's invalid-action penalty, "
                     "compute_graphgpo_outcome_advantage"),
    }.items():
        provenance[method] = {"repository": root, "commit": commit, "function": where}

    def rounded(values):
        return [float(f"{v:.10g}") if v == v else None for v in values]

    batches = []
    for narrow, wide in zip(both[False]["batches"], both[True]["batches"]):
        cases = [{"method": a["method"], "options": a["options"], "float32": rounded(a["advantages"]),
                  "float64": rounded(b["advantages"])} for a, b in zip(narrow["outputs"], wide["outputs"])]
        batches.append({"generator": narrow["generator"], "rows": narrow["rows"], "cases": cases})
    about = ("Advantages computed by the released code of each method on the rows below, as released (float32) and "
             "with float32 replaced by float64 in the same code (float64). Generated by generate_released.py.")
    with open(out, "w") as handle:
        json.dump({"about": about, "provenance": provenance, "batches": batches}, handle, separators=(",", ":"))


if __name__ == "__main__":
    if os.environ.get("PROXMO_RELEASED_PART") == "1":
        print(json.dumps(run_all(), separators=(",", ":")))
    else:
        main(sys.argv[3])
