"""``python -m vqaudio`` (also what ``torchrun -m vqaudio train ...`` runs)."""

from vqaudio.cli import main

if __name__ == "__main__":
    main()
