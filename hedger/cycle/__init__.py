"""One cycle, read -> decide -> plan -> execute -> journal; several markets in one cycle; unwind."""
