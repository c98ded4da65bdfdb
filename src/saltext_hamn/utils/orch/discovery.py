"""Who is primary? Decided from both nodes' ``hamn.status`` answers (or their absence)."""


def roles(nodes, answers):
    """Sum up the pair from ``answers`` ({minion: status dict}; missing = unreachable).

    Returns {"primary", "standby", "unreachable", "vip_holder", "split_brain", "nodes"}.
    ``primary`` is the node that runs PostgreSQL outside recovery; when none does
    (say the primary is dead) it is None and the reachable node is the candidate.
    """
    nodes = sorted(nodes)
    reachable = {n: answers[n] for n in nodes if isinstance(answers.get(n), dict)}
    primaries = [n for n, s in reachable.items() if s.get("role") == "primary"]
    standbys = [n for n, s in reachable.items() if s.get("role") == "standby"]
    vip = [n for n, s in reachable.items() if s.get("vip")]
    result = {
        "nodes": nodes,
        "unreachable": [n for n in nodes if n not in reachable],
        "primary": primaries[0] if len(primaries) == 1 else None,
        "standby": standbys[0] if len(standbys) == 1 else None,
        "vip_holder": vip[0] if len(vip) == 1 else None,
        "split_brain": len(primaries) > 1 or len(vip) > 1,
        "states": {n: reachable[n].get("role") if n in reachable else "unreachable" for n in nodes},
    }
    if result["primary"] and not result["standby"]:
        others = [n for n in nodes if n != result["primary"]]
        result["standby"] = others[0] if others else None  # the node to (re)join
    if not result["primary"] and result["standby"]:
        others = [n for n in nodes if n != result["standby"]]
        result["failed"] = others[0] if others else None
    return result
