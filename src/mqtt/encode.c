_Static_assert(1, "module not written yet");
