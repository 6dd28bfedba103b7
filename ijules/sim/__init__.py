"""The simulation core: typed layouts, parameters and fill records, and the compiled step.

Everything that knows where a number sits in the compiled kernel's arrays lives here, at the
bottom of the package: the rest of ijules reads and writes them by name, through
:class:`ijules.sim.simulator.Simulator`.
"""
