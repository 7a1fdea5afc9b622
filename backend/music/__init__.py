"""Music input: audio loading, librosa features at the motion frame rate, and the synthesised demo song."""
