!> Drives one error path of the atmocorrect API per run and reports, on every rank, the status,
!> the message and whether the host state was left untouched. Used by tests/test_bridge.py.
!>
!> usage: mpirun -np N error_paths case=NAME ckpt=DIR
program error_paths
  use mpi
  use atmocorrect
  implicit none
  integer, parameter :: dp = kind(1.0d0), nx = 4, ny = 3
  type(atmocorrect_t) :: ac
  character(len=512) :: ckpt = "", which = "", arg
  character(len=ATMOCORRECT_MSG_LEN) :: msg
  real(dp), allocatable, target :: t(:, :, :), before(:, :, :)
  real(dp), allocatable, target :: t4(:, :, :, :)
  integer :: ierr, rank, nprocs, stat, i, nz

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  do i = 1, command_argument_count()
    call get_command_argument(i, arg)
    if (arg(1:5) == "case=") which = arg(6:)
    if (arg(1:5) == "ckpt=") ckpt = arg(6:)
  end do
  nz = 5
  if (trim(which) == "wrong_levels") nz = 3
  allocate (t(0:nx + 1, 0:ny + 1, nz))
  t = 280.0_dp + rank
  stat = 0
  msg = ""

  select case (trim(which))
  case ("missing_checkpoint")
    call atmocorrect_init(ac, "/nonexistent/atmocorrect/ckpt", MPI_COMM_WORLD, stat=stat, errmsg=msg)
    call report()
  case ("unknown_field", "wrong_units", "wrong_levels", "wrong_rank", "step_before_add", &
        "nan_one_rank", "fault_one_rank", "after_finalize", "bad_dt", "nostat_fault", "bad_mode")
    if (trim(which) == "bad_mode") then
      call atmocorrect_init(ac, trim(ckpt), MPI_COMM_WORLD, stat=stat, errmsg=msg, mode="sometimes")
      call report()
      call finish()
    end if
    call atmocorrect_init(ac, trim(ckpt), MPI_COMM_WORLD, stat=stat, errmsg=msg)
    if (stat /= 0) then
      call report()
      call finish()
    end if
    call atmocorrect_set_grid(ac, [nx * nprocs, ny, nz], [nx * rank, 0, 0], stat=stat, errmsg=msg)
    if (stat /= 0) then
      call report()
      call finish()
    end if
    select case (trim(which))
    case ("unknown_field")
      call atmocorrect_add_field(ac, "nope", t(1:nx, 1:ny, :), stat=stat, errmsg=msg)
    case ("wrong_units")
      call atmocorrect_add_field(ac, "t", t(1:nx, 1:ny, :), units="degC", stat=stat, errmsg=msg)
    case ("wrong_levels")
      call atmocorrect_add_field(ac, "t", t(1:nx, 1:ny, :), units="K", stat=stat, errmsg=msg)
    case ("wrong_rank")
      allocate (t4(nx, ny, nz, 2))
      t4 = 0
      call atmocorrect_add_field(ac, "t", t4, units="K", stat=stat, errmsg=msg)
    case ("step_before_add")
      call atmocorrect_step(ac, 0.0_dp, 1.0_dp, stat=stat, errmsg=msg)
    case default
      call atmocorrect_add_field(ac, "t", t(1:nx, 1:ny, :), units="K", stat=stat, errmsg=msg)
      if (stat /= 0) then
        call report()
        call finish()
      end if
      select case (trim(which))
      case ("nan_one_rank")
        if (rank == nprocs - 1) t(2, 2, 1) = ieee_nan()
        before = t
        call atmocorrect_step(ac, 0.0_dp, 1.0_dp, stat=stat, errmsg=msg)
      case ("fault_one_rank")
        call atmocorrect_step(ac, 0.0_dp, 1.0_dp, stat=stat, errmsg=msg)
        if (stat /= 0) then
          call report()
          call finish()
        end if
        before = t
        call atmocorrect_step(ac, 1.0_dp, 1.0_dp, stat=stat, errmsg=msg)
      case ("nostat_fault")
        call atmocorrect_step(ac, 0.0_dp, 1.0_dp)
        call atmocorrect_step(ac, 1.0_dp, 1.0_dp)
        write (*, '(a,i0)') "UNREACHED rank=", rank
      case ("after_finalize")
        call atmocorrect_finalize(ac, stat=stat, errmsg=msg)
        before = t
        call atmocorrect_step(ac, 0.0_dp, 1.0_dp, stat=stat, errmsg=msg)
      case ("bad_dt")
        call atmocorrect_step(ac, 0.0_dp, -5.0_dp, stat=stat, errmsg=msg)
      end select
    end select
    call report()
  case default
    write (*, '(2a)') "error_paths: unknown case ", trim(which)
    stat = -1
  end select
  call finish()

contains

  function ieee_nan() result(x)
    use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
    real(dp) :: x
    x = ieee_value(x, ieee_quiet_nan)
  end function ieee_nan

  subroutine report()
    logical :: untouched
    if (.not. allocated(before)) before = t
    untouched = all((t == before) .or. (t /= t .and. before /= before))
    if (trim(which) /= "nan_one_rank" .and. trim(which) /= "fault_one_rank" .and. &
        trim(which) /= "after_finalize") untouched = all(t == 280.0_dp + rank)
    write (*, '(a,a,a,i0,a,i0,a,l1,2a)') "RESULT case=", trim(which), " rank=", rank, " stat=", stat, &
      " untouched=", untouched, " msg=", trim(msg)
    flush (6)
  end subroutine report

  subroutine finish()
    call MPI_Finalize(ierr)
    stop
  end subroutine finish

end program error_paths
