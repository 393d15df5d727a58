"""`python -m pipeline` runs the anon-store command line."""

from pipeline.entry import main

if __name__ == "__main__":
    main()
