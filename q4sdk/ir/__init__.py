"""The intermediate representations and their meaning: the float graph the frontends produce, the
integer model (``QModel``) the quantizer produces, the op table that describes every op kind, the
``.q4`` file, the integer oracle and the float executor. Imports nothing above itself."""
