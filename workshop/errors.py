"""The one exception type the kit raises for problems a user can fix."""


class WorkshopError(Exception):
    """A problem with the user's input or environment.

    The message names the problem and the fix in one line; the CLI prints it as is,
    without a stack trace.
    """
