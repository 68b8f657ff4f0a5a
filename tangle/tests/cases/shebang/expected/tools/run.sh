#!/bin/sh
echo first

echo second
echo third
