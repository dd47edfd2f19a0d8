!> Benchmark host: a gridded Fortran model under MPI that registers `nf` real64 fields of
!> nx x ny x nz (global; 2-D block decomposition over the ranks, each rank's arrays carry a halo
!> ring that is NOT registered: the interior goes in as an array section) and times
!>
!>   A  atmocorrect_step, as any host calls it;
!>   B  the same corrector's network forward on the same data, in plain Python in the same
!>      process (same torch threads), through the interpreter the bridge embedded;
!>
!> interleaved A B B A ... with MPI_Wtime after a barrier. Also times atmocorrect_init (the
!> interpreter start, the imports and the model load of this rank) and, with probe=1, runs one
!> extra step under the allocation probe (bench_probe.py).
!>
!> usage: mpirun -np N bench_host ckpt=DIR probe_dir=DIR [nx= ny= nz= nf=4 reps=3 warm=1
!>                                  ref=1 probe=0 out=FILE dump=PREFIX]
!> dump=PREFIX writes each rank's registered block before the first and after the last timed
!> step to PREFIX.rank<r>.{before,after} (raw float64, Fortran order), to compare backends.
!> Every rank prints lines "BENCH <key> rank=<r> ..." that benchmarks/run.py parses.
program bench_host
  use, intrinsic :: iso_c_binding, only: c_int, c_char, c_null_char
  use mpi
  use atmocorrect
  implicit none

  interface
    function bench_py_exec(code) bind(C, name="bench_py_exec") result(rc)
      import :: c_int, c_char
      character(kind=c_char), intent(in) :: code(*)
      integer(c_int) :: rc
    end function bench_py_exec
  end interface

  integer, parameter :: dp = kind(1.0d0)
  type(atmocorrect_t) :: ac
  character(len=1024) :: ckpt = "", probe_dir = "", out = "", dump = "", arg
  character(len=2048) :: code
  character(len=ATMOCORRECT_MSG_LEN) :: msg
  character(len=16) :: name
  integer :: nx = 256, ny = 64, nz = 5, nf = 4, reps = 3, warm = 1, ref = 1, probe = 0
  integer :: ierr, stat, rank, nprocs, cart, dims(2), coords(2), i, j, k, l, r
  integer :: snx, sny, i0, j0
  logical :: periods(2) = [.true., .false.]
  real(dp), allocatable, target :: f(:, :, :, :)
  real(dp) :: t0, t_init, ta, tb, time, dt = 60.0_dp
  real :: c0, c1, ca, cb
  integer(kind=8) :: address

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  do i = 1, command_argument_count()
    call get_command_argument(i, arg)
    call parse(trim(arg))
  end do

  dims = 0
  call MPI_Dims_create(nprocs, 2, dims, ierr)
  call MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, .false., cart, ierr)
  call MPI_Cart_coords(cart, rank, 2, coords, ierr)
  snx = block_size(nx, dims(1), coords(1)); i0 = block_start(nx, dims(1), coords(1))
  sny = block_size(ny, dims(2), coords(2)); j0 = block_start(ny, dims(2), coords(2))

  ! the host's arrays: a halo ring of one point that the library must never see or touch
  allocate (f(0:snx + 1, 0:sny + 1, nz, nf))
  do l = 1, nf
    do k = 1, nz
      do j = 0, sny + 1
        do i = 0, snx + 1
          f(i, j, k, l) = sin(0.05_dp * (i0 + i) + 0.11_dp * l) * cos(0.07_dp * (j0 + j) - 0.3_dp * k)
        end do
      end do
    end do
  end do

  call MPI_Barrier(cart, ierr)
  t0 = MPI_Wtime()
  call atmocorrect_init(ac, trim(ckpt), cart, stat=stat, errmsg=msg)
  t_init = MPI_Wtime() - t0
  call check("init")
  write (*, '(a,i0,a,f0.4)') "BENCH init rank=", rank, " seconds=", t_init

  call atmocorrect_set_grid(ac, [nx, ny, nz], [i0, j0, 0], stat=stat, errmsg=msg)
  call check("set_grid")
  do l = 1, nf
    write (name, '(a,i0)') "f", l
    call atmocorrect_add_field(ac, trim(name), f(1:snx, 1:sny, :, l), units="1", stat=stat, errmsg=msg)
    call check("add_field")
    call atmocorrect_field_address(ac, trim(name), address, stat=stat, errmsg=msg)
    call check("field_address")
    write (*, '(a,i0,3a,i0,a,i0)') "BENCH address rank=", rank, " field=", trim(name), &
      " library=", address, " host=", loc(f(1, 1, 1, l))
  end do
  write (*, '(a,i0,a,i0,a,i0,a,i0,a,i0,a,i0)') "BENCH block rank=", rank, " nx=", snx, " ny=", sny, &
    " nz=", nz, " nf=", nf, " nprocs=", nprocs

  write (code, '(5a,i0,a)') "import sys; sys.path.insert(0, '", trim(probe_dir), "'); ", &
    "import bench_probe as _bp; ", "_bp.setup(", ac%handle, ")"
  call pyexec(code)

  time = 0.0_dp
  do r = 1, warm                 ! first steps: plans, caches, and the capture of the model input
    time = time + dt
    call atmocorrect_step(ac, time, dt, stat=stat, errmsg=msg)
    call check("step")
  end do
  call pyexec("_bp.arm()")
  if (len_trim(dump) > 0) call dump_block("before")

  do r = 1, reps
    if (mod(r, 2) == 1) then     ! A B, then B A: drift on a shared machine cancels
      call time_a(); if (ref /= 0) call time_b()
    else
      if (ref /= 0) call time_b(); call time_a()
    end if
    if (ref /= 0) then
      write (*, '(a,i0,a,i0,4(a,g0))') "BENCH rep rank=", rank, " rep=", r, " step=", ta, " forward=", tb, &
        " step_cpu=", ca, " forward_cpu=", cb
    else
      write (*, '(a,i0,a,i0,2(a,g0))') "BENCH rep rank=", rank, " rep=", r, " step=", ta, " step_cpu=", ca
    end if
  end do

  call pyexec("_bp.report()")
  if (len_trim(dump) > 0) call dump_block("after")

  if (probe /= 0) then           ! one more step, with the allocation probe installed
    call pyexec("_bp.probe_begin()")
    time = time + dt
    call atmocorrect_step(ac, time, dt, stat=stat, errmsg=msg)
    call check("step (probe)")
    write (code, '(3a)') "_bp.probe_end('", trim(out), "')"
    call pyexec(code)
    call pyexec("_bp.profile_begin()")   ! and one under cProfile
    time = time + dt
    call atmocorrect_step(ac, time, dt, stat=stat, errmsg=msg)
    call check("step (profile)")
    write (code, '(3a)') "_bp.profile_end('", trim(out), "')"
    call pyexec(code)
  end if

  call atmocorrect_finalize(ac, stat=stat, errmsg=msg)
  call check("finalize")
  call MPI_Finalize(ierr)

contains

  subroutine time_a()
    call MPI_Barrier(cart, ierr)
    call cpu_time(c0)
    t0 = MPI_Wtime()
    time = time + dt
    call atmocorrect_step(ac, time, dt, stat=stat, errmsg=msg)
    ta = MPI_Wtime() - t0
    call cpu_time(c1)
    ca = c1 - c0
    call check("step")
    call pyexec("_bp.mark()")
  end subroutine time_a

  subroutine time_b()
    call MPI_Barrier(cart, ierr)
    call cpu_time(c0)
    t0 = MPI_Wtime()
    call pyexec("_bp.forward()")
    tb = MPI_Wtime() - t0
    call cpu_time(c1)
    cb = c1 - c0
  end subroutine time_b

  subroutine dump_block(suffix)
    character(len=*), intent(in) :: suffix
    character(len=1100) :: path
    integer :: unit
    write (path, '(2a,i0,2a)') trim(dump), ".rank", rank, ".", suffix
    open (newunit=unit, file=trim(path), access="stream", form="unformatted", status="replace")
    write (unit) f(1:snx, 1:sny, :, :)
    close (unit)
  end subroutine dump_block

  subroutine pyexec(text)
    character(len=*), intent(in) :: text
    if (bench_py_exec(trim(text)//c_null_char) /= 0) then
      write (*, '(a,i0,2a)') "BENCH error rank=", rank, " python failed: ", trim(text)
      call MPI_Abort(MPI_COMM_WORLD, 4, ierr)
    end if
  end subroutine pyexec

  subroutine parse(kv)
    character(len=*), intent(in) :: kv
    integer :: eq
    eq = index(kv, "=")
    select case (kv(1:max(eq - 1, 0)))
    case ("ckpt"); ckpt = kv(eq + 1:)
    case ("probe_dir"); probe_dir = kv(eq + 1:)
    case ("out"); out = kv(eq + 1:)
    case ("dump"); dump = kv(eq + 1:)
    case ("nx"); read (kv(eq + 1:), *) nx
    case ("ny"); read (kv(eq + 1:), *) ny
    case ("nz"); read (kv(eq + 1:), *) nz
    case ("nf"); read (kv(eq + 1:), *) nf
    case ("reps"); read (kv(eq + 1:), *) reps
    case ("warm"); read (kv(eq + 1:), *) warm
    case ("ref"); read (kv(eq + 1:), *) ref
    case ("probe"); read (kv(eq + 1:), *) probe
    case default
      if (rank == 0) write (*, '(2a)') "bench_host: unknown argument ", kv
      call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
    end select
  end subroutine parse

  subroutine check(where)
    character(len=*), intent(in) :: where
    if (stat /= ATMOCORRECT_SUCCESS) then
      write (*, '(a,i0,3a,i0,2a)') "BENCH error rank=", rank, " call=", where, " stat=", stat, " msg=", trim(msg)
      call MPI_Abort(MPI_COMM_WORLD, 3, ierr)
    end if
  end subroutine check

  integer function block_size(n, parts, index)
    integer, intent(in) :: n, parts, index
    block_size = n / parts
    if (index < mod(n, parts)) block_size = block_size + 1
  end function block_size

  integer function block_start(n, parts, index)
    integer, intent(in) :: n, parts, index
    block_start = index * (n / parts) + min(index, mod(n, parts))
  end function block_start

end program bench_host
