"""Command palette provider: every action of :data:`tui.keymap.ACTIONS`, by name, with its key."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.keymap import ACTIONS, Action, display_key


class W2SCommands(Provider):
    """Lists the same actions the keys run; read-only mode leaves out launching and cancelling."""

    def _actions(self) -> list[Action]:
        app = self.app
        readonly = bool(getattr(app, "readonly", False))
        return [a for a in ACTIONS if not (readonly and a.mutating)]

    def _label(self, action: Action) -> str:
        keys = getattr(self.app, "keys", {})
        return f"{action.description} ({display_key(keys.get(action.id, action.key))})"

    async def discover(self) -> Hits:
        for action in self._actions():
            yield DiscoveryHit(self._label(action), partial(self._run, action), help=action.id)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action in self._actions():
            label = self._label(action)
            score = max(matcher.match(label), matcher.match(action.id))
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(self._run, action), help=action.id)

    async def _run(self, action: Action) -> None:
        await self.app.run_action(action.action)
