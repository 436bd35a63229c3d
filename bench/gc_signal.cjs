// Preloaded into a Node reference server (node --expose-gc --require gc_signal.cjs ...): a full
// garbage collection on SIGUSR2, so run.py samples RSS after a GC, as it does for edrys-relay.
process.on('SIGUSR2', () => { global.gc() })
