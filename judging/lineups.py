"""Debater line-ups: which configurations speak in each arm, and how debaters are paired. Pure Python.

An arm's line-up is a list of members (a configuration and the role it may take). The experiment's
pairing design turns a debate arm's line-up into *pairings* (honest configuration, adversary
configuration):

- ``self-play``: each member that may take either side argues against itself;
- ``round-robin``: every member that may argue honestly against every member that may argue for the
  wrong answer, itself included (with roles, an honest-vs-adversary matrix);
- ``cross-play``: the same without self-play.

A single-speaker arm (consultancy, a sandwiching assistant) has one pairing per member: that member
speaks, honestly or not as the trial's condition says. The judge-alone arm has one pairing and no
speaker. An arm without members uses the experiment's debater model.

Every pairing of every arm is a *design cell*: the planner (``judging.assignment.plan_trials``)
rotates cells within each question and balances them per judge, as it does arms; so every cell
gets an equal share of the trials.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocols.registry import ARMS, PROTOCOLS

SELF_PLAY = "self-play"
ROUND_ROBIN = "round-robin"
CROSS_PLAY = "cross-play"
PAIRINGS = (SELF_PLAY, ROUND_ROBIN, CROSS_PLAY)

BOTH = "both"
HONEST = "honest"
ADVERSARY = "adversary"
ROLES = (BOTH, HONEST, ADVERSARY)


class LineupError(ValueError):
    pass


@dataclass(frozen=True)
class Member:
    config: int  # a model configuration's id
    role: str = BOTH


@dataclass(frozen=True)
class Cell:
    """One design cell: an arm with the configurations that may speak in it (None: nobody)."""

    arm: str
    honest: int | None
    adversary: int | None


def arm_cells(arm: str, members: list[Member], pairing: str, default_config: int) -> list[Cell]:
    """The design cells of one arm."""
    if pairing not in PAIRINGS:
        raise LineupError(f"unknown pairing design {pairing!r}; choose from {', '.join(PAIRINGS)}")
    if not ARMS[arm].has_speaker:
        if members:
            raise LineupError(f"nobody speaks in the {arm} arm: it takes no line-up")
        return [Cell(arm, None, None)]
    members = members or [Member(default_config)]
    configs = [m.config for m in members]
    if len(set(configs)) != len(configs):
        raise LineupError(f"the {arm} arm's line-up names a configuration twice")
    if not PROTOCOLS[ARMS[arm].protocol].two_speakers:
        if any(m.role != BOTH for m in members):
            raise LineupError(
                f"roles are for debaters: the {arm} arm's single speaker is honest or not as each trial's "
                "condition says, so its line-up members take either side"
            )
        return [Cell(arm, m.config, m.config) for m in members]
    honest = [m.config for m in members if m.role in (BOTH, HONEST)]
    adversaries = [m.config for m in members if m.role in (BOTH, ADVERSARY)]
    if pairing == SELF_PLAY:
        pairs = [(m.config, m.config) for m in members if m.role == BOTH]
        if len(pairs) != len(members):
            raise LineupError(
                f"self-play: every member of the {arm} arm argues against itself, so each must take either "
                "side (use round-robin for an honest-vs-adversary matrix)"
            )
    else:
        pairs = [(h, a) for h in honest for a in adversaries if pairing == ROUND_ROBIN or h != a]
    if not pairs:
        raise LineupError(
            f"{pairing}: the {arm} arm's line-up gives no pairing (it needs a member that can argue honestly "
            "and a different one that can argue for the wrong answer)"
        )
    return [Cell(arm, h, a) for h, a in pairs]


def design_cells(arms: list[str], lineups: dict[str, list[Member]], pairing: str, default_config: int) -> list[Cell]:
    """Every design cell of an experiment, arm by arm in the experiment's order."""
    stray = sorted(set(lineups) - set(arms))
    if stray:
        raise LineupError(f"the line-up names arm {stray[0]!r}, which the experiment does not run")
    return [cell for arm in arms for cell in arm_cells(arm, lineups.get(arm, []), pairing, default_config)]
