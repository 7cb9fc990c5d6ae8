"""The one exception type a user can cause.

Every folder of the project may raise :class:`UserError` for input a user controls (a bad file,
an unsupported layer, a model too big for a board). The CLI prints its message as one sentence
and exits with code 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error caused by user input; its message names the cause and the fix."""

    exit_code = 2
