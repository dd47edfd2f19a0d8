!> Halo exchange for gridded_model over a 2-D periodic Cartesian communicator.
module gridded_halo
  use mpi
  use gridded_model, only: t, q, ps, snx, sny, nz, halo, dp, sp
  implicit none
  private
  public :: exchange_halo

contains

  !> Fill the halo of t, q and ps from the neighbouring blocks (x first, then y with corners).
  subroutine exchange_halo(cart)
    integer, intent(in) :: cart
    integer :: west, east, south, north, ierr
    call MPI_Cart_shift(cart, 0, 1, west, east, ierr)
    call MPI_Cart_shift(cart, 1, 1, south, north, ierr)
    call exchange_3d_dp(t, cart, west, east, south, north)
    call exchange_3d_sp(q, cart, west, east, south, north)
    call exchange_2d_dp(ps, cart, west, east, south, north)
  end subroutine exchange_halo

  subroutine exchange_3d_dp(a, cart, west, east, south, north)
    real(dp), intent(inout) :: a(1 - halo:, 1 - halo:, :)
    integer, intent(in) :: cart, west, east, south, north
    real(dp), allocatable :: sbuf(:, :), rbuf(:, :)
    integer :: ierr, nk
    nk = size(a, 3)
    allocate (sbuf(sny, nk), rbuf(sny, nk))
    sbuf = a(snx, 1:sny, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_DOUBLE_PRECISION, east, 1, rbuf, size(rbuf), &
                      MPI_DOUBLE_PRECISION, west, 1, cart, MPI_STATUS_IGNORE, ierr)
    a(0, 1:sny, :) = rbuf
    sbuf = a(1, 1:sny, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_DOUBLE_PRECISION, west, 2, rbuf, size(rbuf), &
                      MPI_DOUBLE_PRECISION, east, 2, cart, MPI_STATUS_IGNORE, ierr)
    a(snx + 1, 1:sny, :) = rbuf
    deallocate (sbuf, rbuf)
    allocate (sbuf(snx + 2, nk), rbuf(snx + 2, nk))
    sbuf = a(0:snx + 1, sny, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_DOUBLE_PRECISION, north, 3, rbuf, size(rbuf), &
                      MPI_DOUBLE_PRECISION, south, 3, cart, MPI_STATUS_IGNORE, ierr)
    a(0:snx + 1, 0, :) = rbuf
    sbuf = a(0:snx + 1, 1, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_DOUBLE_PRECISION, south, 4, rbuf, size(rbuf), &
                      MPI_DOUBLE_PRECISION, north, 4, cart, MPI_STATUS_IGNORE, ierr)
    a(0:snx + 1, sny + 1, :) = rbuf
  end subroutine exchange_3d_dp

  subroutine exchange_3d_sp(a, cart, west, east, south, north)
    real(sp), intent(inout) :: a(1 - halo:, 1 - halo:, :)
    integer, intent(in) :: cart, west, east, south, north
    real(sp), allocatable :: sbuf(:, :), rbuf(:, :)
    integer :: ierr, nk
    nk = size(a, 3)
    allocate (sbuf(sny, nk), rbuf(sny, nk))
    sbuf = a(snx, 1:sny, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_REAL, east, 1, rbuf, size(rbuf), MPI_REAL, west, 1, &
                      cart, MPI_STATUS_IGNORE, ierr)
    a(0, 1:sny, :) = rbuf
    sbuf = a(1, 1:sny, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_REAL, west, 2, rbuf, size(rbuf), MPI_REAL, east, 2, &
                      cart, MPI_STATUS_IGNORE, ierr)
    a(snx + 1, 1:sny, :) = rbuf
    deallocate (sbuf, rbuf)
    allocate (sbuf(snx + 2, nk), rbuf(snx + 2, nk))
    sbuf = a(0:snx + 1, sny, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_REAL, north, 3, rbuf, size(rbuf), MPI_REAL, south, 3, &
                      cart, MPI_STATUS_IGNORE, ierr)
    a(0:snx + 1, 0, :) = rbuf
    sbuf = a(0:snx + 1, 1, :)
    call MPI_Sendrecv(sbuf, size(sbuf), MPI_REAL, south, 4, rbuf, size(rbuf), MPI_REAL, north, 4, &
                      cart, MPI_STATUS_IGNORE, ierr)
    a(0:snx + 1, sny + 1, :) = rbuf
  end subroutine exchange_3d_sp

  subroutine exchange_2d_dp(a, cart, west, east, south, north)
    real(dp), intent(inout) :: a(1 - halo:, 1 - halo:)
    integer, intent(in) :: cart, west, east, south, north
    real(dp), allocatable :: tmp(:, :, :)
    allocate (tmp(1 - halo:snx + halo, 1 - halo:sny + halo, 1))
    tmp(:, :, 1) = a
    call exchange_3d_dp(tmp, cart, west, east, south, north)
    a = tmp(:, :, 1)
  end subroutine exchange_2d_dp

end module gridded_halo
