"""The speaker: pure decisions (`decision`, `endpoints`, `nodes`), membership (`heartbeat`,
`membership`), and the process that glues them to Kubernetes, layer2 and BGP."""
