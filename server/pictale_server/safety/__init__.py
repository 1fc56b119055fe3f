"""The minor-protection gate: text cues and an image assessment, always on (docs/safety.md).

The serving layer uses `gate.SafetyGate`; everything else here is its parts.
"""
