"""What a spreadsheet would run as a formula: the first characters the run folder's writers
(CSV and the workbook) protect with a leading "'", and its readers take back off.

Its own module so that every writer and reader shares one list without importing another."""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
