"""The master asks a node for its config only when the node's digest says it changed."""

from saltext_hamn.utils import config
from saltext_hamn.utils.orch import history
from saltext_hamn.utils.orch.master import Master
from saltext_hamn.utils.orch.observation import NodeView
from tests import support


def test_begin_reuses_the_kept_config_while_its_digest_is_unchanged(tmp_path, monkeypatch):
    master = Master({"cachedir": str(tmp_path)})
    in_memory = support.load()
    history.write_json(master.config_path, in_memory)
    kept = master.cached_config()  # as read back from the file
    # The node hashes its config as loaded; the master its JSON copy: the same digest.
    assert config.digest(in_memory) == config.digest(kept)
    asked = []
    fresh = {**kept, "maintenance": True}

    def call(tgt, fun, arg=(), kwarg=None, timeout=60, **_):  # pylint: disable=unused-argument
        asked.append((tuple(tgt), fun))
        return {tgt[0]: {"retcode": 0, "ret": fresh}}

    monkeypatch.setattr(master, "call", call)
    views = {"mn1": NodeView(name="mn1"), "mn2": NodeView(name="mn2")}
    views["mn1"].status = {"role": "primary", "config_digest": config.digest(kept)}
    assert master.config(["mn1", "mn2"], views) == kept and asked == []  # unchanged: no round trip
    views["mn1"].status["config_digest"] = config.digest(fresh)
    assert master.config(["mn1", "mn2"], views) == fresh and asked == [(("mn1",), "hamn.config")]
    assert master.cached_config() == fresh  # and kept for the next run
