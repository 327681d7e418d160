"""Studies as lists of ordinary pixar commands: the step runner, the reproduction study and the demo."""
