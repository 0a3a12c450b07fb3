"""The Redis key layout: one builder per key or channel, and the only Python that
names one. ``lua/apply.lua`` builds the keys it touches from its own table
(``key``), which mirrors the company builders here; ``tests/test_keys.py``
runs both and checks that they agree.

For a key prefix ``P`` (``presence:`` by default) and company ``C``, a
company's keys carry the ``{C}`` hash tag, so one company lives in one Redis
Cluster slot and the write script can touch all of them at once:

=============================  ======  ==============================================
key                            type    holds
=============================  ======  ==============================================
``P{C}:events``                stream  the log: per event ``ts agent session type
                                       value reason`` then the agent's state after it
                                       (``connection status activity segments
                                       since_* idle_since``); ``""`` is null
``P{C}:epoch``                 string  changes whenever the stream is (re)created
``P{C}:trimmed``               string  the last entry id retention dropped
``P{C}:agent:<agent>``         hash    the agent's state (spec §2) and the connection
                                       holding its session (``conn``)
``P{C}:agent-log:<agent>``     stream  the agent's entry ids (the same ids), its index
``P{C}:session:<id>``          hash    ``agent``; exists while the session is
                                       resumable, expires ``session_ttl`` after a
                                       disconnect
``P{C}:idle``                  zset    routable agents scored by ``idle_since``
``P{C}:idle:<segment>``        zset    the same, per segment
``P{C}:agents``                set     every agent ever seen
``P{C}:config``                hash    the company's settings (defaults when absent)
``P{C}:request:<id>``          string  a write's result for ``store_retry`` + 30 s, so
                                       that a retried write (its reply was lost)
                                       applies once
``P{C}:changes``               pubsub  an applied change as JSON, when it concerns a
                                       connection on another instance
``P{C}:log``                   pubsub  every applied change, with the log's id before
                                       it, one message per script run: what
                                       instances with monitors of ``C`` follow
=============================  ======  ==============================================

The instances' own keys are global: no hash tag, and every command touches one.

=============================  ======  ==============================================
``P:instances``                set     every instance that may hold sessions
``P:companies``                set     every company that ever had an agent connect:
                                       what retention walks (no SCAN of the keyspace)
``P:alive:<instance>``         string  the instance's proof of life, ``instance_ttl``
``P:conns:<instance>``         hash    connection id → ``company agent``, for each
                                       session the instance holds
``P:retention-lease``          string  the instance doing this retention round
``P:control:<instance>``       pubsub  questions to the instance (liveness probes)
=============================  ======  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Every key and channel name under one prefix."""

    prefix: str = "presence:"

    # A company's keys.

    def company(self, company: str) -> str:
        """What every key of ``company`` starts with: the write script's ``KEYS[1]``."""
        return f"{self.prefix}{{{company}}}:"

    def events(self, company: str) -> str:
        return self.company(company) + "events"

    def epoch(self, company: str) -> str:
        return self.company(company) + "epoch"

    def trimmed(self, company: str) -> str:
        return self.company(company) + "trimmed"

    def agent(self, company: str, agent: str) -> str:
        return self.company(company) + "agent:" + agent

    def agent_log(self, company: str, agent: str) -> str:
        return self.company(company) + "agent-log:" + agent

    def session(self, company: str, session: str) -> str:
        return self.company(company) + "session:" + session

    def idle(self, company: str, segment: str | None = None) -> str:
        return self.company(company) + ("idle:" + segment if segment else "idle")

    def agents(self, company: str) -> str:
        return self.company(company) + "agents"

    def config(self, company: str) -> str:
        return self.company(company) + "config"

    def request(self, company: str, request_id: str) -> str:
        return self.company(company) + "request:" + request_id

    def changes(self, company: str) -> str:
        return self.company(company) + "changes"

    def log(self, company: str) -> str:
        return self.company(company) + "log"

    # Patterns over every company, and the way back from a name to its company.

    def company_of(self, name: str) -> str:
        """The company of one of its keys or channels."""
        return name[len(self.prefix) + 1 : name.index("}:", len(self.prefix))]

    # The instances' keys.

    def instances(self) -> str:
        return self.prefix + "instances"

    def companies(self) -> str:
        return self.prefix + "companies"

    def alive(self, instance: str) -> str:
        return self.prefix + "alive:" + instance

    def conns(self, instance: str) -> str:
        return self.prefix + "conns:" + instance

    def retention_lease(self) -> str:
        return self.prefix + "retention-lease"

    def control(self, instance: str) -> str:
        return self.prefix + "control:" + instance
