"""Who is calling: HTTP Basic credentials (username = project id, password = key) checked
against the keys kept in the store, plus keys given by the environment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi.security import HTTPBasicCredentials

from ..errors import AuthenticationError, InvalidArgumentError
from ..stores.auth import AuthRecords, AuthTable, env_table
from ..validation import validate_project_id

_REFUSED = (
    "unknown project, or a wrong or revoked key: pass the project id and one of its keys "
    "(MossClient(project_id, project_key) or MOSS_PROJECT_ID / MOSS_PROJECT_KEY)"
)


class Authenticator:
    """Map credentials to the project they unlock, or raise :class:`AuthenticationError`.

    The store's record is re-read (one cheap call) per request, so a key revoked on any replica
    stops working everywhere at once; it is parsed again only when its version changes.
    """

    def __init__(
        self, records: AuthRecords | None, env_keys: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self._records = records
        self._env = env_table(env_keys or {})
        self._parsed: tuple[int, AuthTable] = (0, AuthTable())

    async def project(self, credentials: HTTPBasicCredentials | None) -> str:
        """The project whose key was presented."""
        if credentials is None or not credentials.password:
            raise AuthenticationError(
                "no project key given: pass the project id and key "
                "(MossClient(project_id, project_key) or MOSS_PROJECT_ID / MOSS_PROJECT_KEY)"
            )
        project, key = credentials.username, credentials.password
        try:
            validate_project_id(project)
        except InvalidArgumentError:
            raise AuthenticationError(_REFUSED) from None
        if self._env.verify(project, key) or (await self._table()).verify(project, key):
            return project
        raise AuthenticationError(_REFUSED)

    async def _table(self) -> AuthTable:
        if self._records is None:
            return AuthTable()
        version, data = await self._records.aread_auth()
        if version != self._parsed[0]:
            self._parsed = (version, AuthTable.from_bytes(data))
        return self._parsed[1]
