# The two commands a fresh machine needs (see README):
#   make demo   set everything up, start the local stack and run the demo
#   make test   set everything up and run the whole test suite
.PHONY: setup demo test

setup:
	bash deploy/local/setup.sh

demo: setup
	.venv/bin/dialback stack up
	.venv/bin/dialback demo

test: setup
	.venv/bin/python -m pytest
