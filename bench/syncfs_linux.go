package bench

import "golang.org/x/sys/unix"

// syncFS waits for the file system that holds dir to have written what
// it holds dirty (syncfs): a tracer's run leaves gigabytes of its trace
// being written back, which would slow whichever run comes next.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
