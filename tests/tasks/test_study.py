"""Several sweep workers on one Optuna study (real SQLite RDB storage): a live worker's trials are left alone, a
dead worker's are failed and retried with their parameters, and every worker samples its own stream."""

import time

import optuna
import pytest

from tasks.study import Heartbeats, ask, make_pruner, open_study, study_storage, use_worker_stream

State = optuna.trial.TrialState


def _worker(url, seed=0, heartbeat_s=1, grace_s=3):
    storage = study_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)
    return storage, open_study("shared", storage, make_pruner("none"))


def _first(study, seed=0):
    trial = ask(study)
    use_worker_stream(study, seed, trial.number)
    return trial


def _sample(trial):
    return (trial.suggest_float("delta", 0.01, 0.3, log=True), trial.suggest_float("tau", 0.02, 1.0, log=True))


def test_a_second_worker_leaves_the_first_workers_live_trial_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage_a, study_a = _worker(url)
    with Heartbeats(storage_a) as beats:
        trial = _first(study_a)
        beats.add(trial._trial_id)
        _sample(trial)
        time.sleep(4)  # longer than the grace period: only the heartbeats keep the trial alive
        _, study_b = _worker(url)  # the second worker starts while the first one's trial trains
        assert study_b.trials[trial.number].state == State.RUNNING
        trial.report(0.5, 1)  # the first worker goes on reporting ...
        study_a.tell(trial, 0.5)  # ... and finishes its trial
    assert study_b.trials[trial.number].state == State.COMPLETE


def test_a_dead_workers_trial_is_failed_and_retried_with_its_parameters(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage_a, study_a = _worker(url)
    trial = _first(study_a)
    storage_a.record_heartbeat(trial._trial_id)
    params = _sample(trial)
    time.sleep(4)  # the worker died: no heartbeat for longer than the grace period
    _, study_b = _worker(url)
    assert study_b.trials[trial.number].state == State.FAIL
    retry = ask(study_b)
    assert retry.number != trial.number and _sample(retry) == params


def test_every_worker_samples_its_own_stream_and_one_worker_repeats(tmp_path):
    def suggestions(url, workers):
        studies = [_worker(url)[1] for _ in range(workers)]
        firsts = [_first(study) for study in studies]
        return [_sample(trial) for trial in firsts]

    a, b = suggestions(f"sqlite:///{tmp_path / 'two.db'}", 2)
    assert a != b  # the same seed, not the same δ and τ
    [alone] = suggestions(f"sqlite:///{tmp_path / 'one.db'}", 1)
    [again] = suggestions(f"sqlite:///{tmp_path / 'again.db'}", 1)
    assert alone == again == a  # one worker on a fresh study: the seed's own stream


@pytest.fixture(autouse=True)
def _no_experimental_noise():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
