import sys
print("0 passed, 1 failed: not written yet")
sys.exit(1)
