"""Click commands of the ``adaptune`` command line, one module per command or group.

``adaptune.cli`` registers each with ``main.add_command``.
"""
