"""Native BGP speaker: `messages` is the pure wire codec, `session` the asyncio peer session."""
