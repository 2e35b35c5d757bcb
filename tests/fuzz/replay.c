/*
 * replay.c - a stand-alone driver for libFuzzer targets, so the committed
 * corpora run as ordinary tests (suite 'fuzz') without libFuzzer.
 *
 * Arguments are files or directories (one level, every regular file).
 * Each input is fed as is, then every strict prefix of it (truncation is
 * the commonest real-world fault) and every single-bit flip of it, each in
 * a heap buffer of exactly its size so AddressSanitizer catches a read one
 * byte past the end.  Finding no input at all is a failure, not a skip.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Corpus inputs are small; a bigger file is a mistake worth reporting. */
#define INPUT_BYTES_MAX (1u << 20)

static void feed(const uint8_t *data, size_t size)
{
	/* malloc(0) may return NULL; keep one byte so the pointer is real. */
	uint8_t *copy = malloc(size ? size : 1);

	if (copy == NULL) {
		fprintf(stderr, "replay: out of memory\n");
		exit(1);
	}
	if (size)
		memcpy(copy, data, size);
	(void)LLVMFuzzerTestOneInput(copy, size);
	free(copy);
}

static void replay(const uint8_t *data, size_t size)
{
	uint8_t *flip;

	feed(data, size);
	for (size_t i = 0; i < size; i++)
		feed(data, i);
	flip = malloc(size ? size : 1);
	if (flip == NULL) {
		fprintf(stderr, "replay: out of memory\n");
		exit(1);
	}
	if (size)
		memcpy(flip, data, size);
	for (size_t i = 0; i < size; i++) {
		for (int bit = 0; bit < 8; bit++) {
			flip[i] ^= (uint8_t)(1u << bit);
			feed(flip, size);
			flip[i] ^= (uint8_t)(1u << bit);
		}
	}
	free(flip);
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t n;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	buf = malloc(INPUT_BYTES_MAX);
	if (buf == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, INPUT_BYTES_MAX, f);
	if (ferror(f) || !feof(f) || fgetc(f) != EOF) {
		fprintf(stderr, "replay: %s: read error or larger than %u bytes\n", path, INPUT_BYTES_MAX);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	replay(buf, n);
	free(buf);
	return 0;
}

static int run_path(const char *path, unsigned *count)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	if (stat(path, &st) < 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return run_file(path);
	}
	d = opendir(path);
	if (d == NULL) {
		perror(path);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char full[4096];
		int n;

		if (e->d_name[0] == '.')
			continue;
		n = snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
		if (n < 0 || (size_t)n >= sizeof(full) || stat(full, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		(*count)++;
		if (run_file(full) < 0)
			rc = -1;
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i], &count) < 0)
			rc = 1;
	if (count == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return 1;
	}
	printf("replay: %u inputs, their prefixes and bit flips: ok\n", count);
	return rc;
}
