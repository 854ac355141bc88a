"""A tiny calculator: the sample project the demo and the end-to-end tests gate."""


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    return a * b
